"""The legacy "wide" top-of-book dataset: one row per valid `kracked.book.top` record, levels as columns.

The original kracked wrote books as `timestamp, ap0, av0, bp0, bv0, ap1, …, bv{N-1}` (ask price, ask
volume, bid price, bid volume per level, best first; see its `L2_<BASE>_<QUOTE>_orderbook.csv`). This
dataset keeps that column order so old notebooks work, with exact `decimal128(38, 18)` values instead
of floats, followed by `epoch` and `valid`; `symbol` (and `date`) come from the Hive path as for
every kracked dataset. It is written next to the raw topic as `<dir>/kracked.book.top.wide/` by the
same writer (same files, same exactly-once rules), as a `DerivedDataset` of `kracked.book.top`.

Only books with `valid` true become rows: the wide layout has no place to say that a book is
unverified (before the first snapshot, after a checksum mismatch), and the original only wrote books
it trusted. `valid` is still a column (always true) so that a union with other data stays explicit.
`timestamp` is Kraken's event time of the last applied update (`ts_event`), else the receive time
(`ts_recv`), else the publication time (`ts`). A side with fewer than N levels leaves the deeper
columns null; levels beyond N are not written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from consumers.parquet.arrow_schema import (
    DECIMAL_TYPE,
    TIMESTAMP_US,
    ColumnSpec,
    TableSpec,
    decimal_normalizer,
)

WIDE_SUFFIX = ".wide"
DEFAULT_DEPTH = 10


def wide_columns(depth: int = DEFAULT_DEPTH) -> list[str]:
    """`timestamp, ap0, av0, bp0, bv0, …` exactly as the original CSV header, for `depth` levels."""
    names = ["timestamp"]
    for i in range(depth):
        names += [f"ap{i}", f"av{i}", f"bp{i}", f"bv{i}"]
    return names


def wide_spec(depth: int = DEFAULT_DEPTH, name: str = "kracked.book.top" + WIDE_SUFFIX) -> TableSpec:
    """The TableSpec of the wide dataset (file columns: the header, then epoch, valid)."""
    if depth < 1:
        raise ValueError("depth must be at least 1")
    level = decimal_normalizer(nullable=True)
    columns = [ColumnSpec("timestamp", TIMESTAMP_US, nullable=False)]
    columns += [
        ColumnSpec(n, DECIMAL_TYPE, nullable=True, staging=pa.string(), normalize=level)
        for n in wide_columns(depth)[1:]
    ]
    columns += [
        ColumnSpec("symbol", pa.string(), nullable=False, dictionary=True),
        ColumnSpec("epoch", pa.int64(), nullable=True),
        ColumnSpec("valid", pa.bool_(), nullable=False),
    ]
    return TableSpec(name, columns, symbol_field="symbol", time_fields=("timestamp",))


def wide_row(record: Mapping[str, Any], depth: int = DEFAULT_DEPTH) -> dict[str, Any] | None:
    """The wide row of a `kracked.book.top` record, None for a book that is not valid."""
    if record.get("valid") is not True:
        return None
    ts = record.get("ts_event")
    if ts is None:
        ts = record.get("ts_recv")
    if ts is None:
        ts = record.get("ts")
    if ts is None:
        raise ValueError("book.top record without any timestamp")
    asks: Sequence[Mapping[str, Any]] = record.get("asks") or ()
    bids: Sequence[Mapping[str, Any]] = record.get("bids") or ()
    row: dict[str, Any] = {"timestamp": ts}
    for i in range(depth):
        ask = asks[i] if i < len(asks) else None
        bid = bids[i] if i < len(bids) else None
        row[f"ap{i}"] = None if ask is None else ask["price"]
        row[f"av{i}"] = None if ask is None else ask["qty"]
        row[f"bp{i}"] = None if bid is None else bid["price"]
        row[f"bv{i}"] = None if bid is None else bid["qty"]
    row["symbol"] = record["symbol"]
    row["epoch"] = record.get("epoch")
    row["valid"] = True
    return row


class WideBook:
    """`DerivedDataset` for `ParquetWriter(derived={"kracked.book.top": [WideBook()]})`."""

    suffix = WIDE_SUFFIX

    def __init__(self, depth: int = DEFAULT_DEPTH) -> None:
        self.depth = depth
        self.spec = wide_spec(depth)

    def row(self, record: Mapping[str, Any]) -> dict[str, Any] | None:
        try:
            return wide_row(record, self.depth)
        except (KeyError, TypeError, IndexError) as exc:
            raise ValueError(f"malformed book.top record: {exc!r}") from None
