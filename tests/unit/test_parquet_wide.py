"""The legacy wide top-of-book dataset written from kracked.book.top records."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest

from consumers.parquet.arrow_schema import DECIMAL_TYPE
from consumers.parquet.wide import WideBook, wide_columns, wide_row
from consumers.parquet.writer import Commit, ParquetWriter

# Header of the original kracked's L2_BTC_USD_orderbook.csv (data/seed-outputs/ex_multifeed_out/).
SEED_HEADER = (
    "timestamp,ap0,av0,bp0,bv0,ap1,av1,bp1,bv1,ap2,av2,bp2,bv2,ap3,av3,bp3,bv3,ap4,av4,bp4,bv4,"
    "ap5,av5,bp5,bv5,ap6,av6,bp6,bv6,ap7,av7,bp7,bv7,ap8,av8,bp8,bv8,ap9,av9,bp9,bv9"
)
TOPIC = "kracked.book.top"
TS = 1_731_394_244_897_594  # 2024-11-12T06:50:44.897594Z, the seed's first row


def book(offset: int, valid: bool = True, levels: int = 10, symbol: str = "BTC/USD") -> dict[str, Any]:
    return {
        "symbol": symbol,
        "kind": "l2",
        "depth": 10,
        "bids": [
            {"price": f"{(897048 - i) // 10}.{(897048 - i) % 10}", "qty": f"4.76349145{i}"}
            for i in range(levels)
        ],
        "asks": [{"price": f"8970{5 + i}.9", "qty": "0.002000000"} for i in range(levels)],
        "checksum": 3310070434,
        "checksum_ok": valid,
        "valid": valid,
        "epoch": 3,
        "price_precision": 1,
        "qty_precision": 8,
        "ts_event": TS + offset,
        "ts_recv": TS + offset + 100,
        "ts": TS + offset + 100,
        "source_topic": "kraken.book",
        "source_partition": 0,
        "source_offset": 1000 + offset,
    }


def test_columns_match_the_seed_csv_header() -> None:
    assert ",".join(wide_columns(10)) == SEED_HEADER
    assert wide_columns(1) == ["timestamp", "ap0", "av0", "bp0", "bv0"]


def test_wide_row() -> None:
    row = wide_row(book(0, levels=2), depth=3)
    assert row is not None
    assert row["timestamp"] == TS
    assert (row["ap0"], row["av0"], row["bp0"], row["bv0"]) == (
        "89705.9",
        "0.002000000",
        "89704.8",
        "4.763491450",
    )
    assert (row["ap1"], row["bp1"]) == ("89706.9", "89704.7")
    assert row["ap2"] is None and row["bv2"] is None  # fewer levels than the depth: null
    assert (row["symbol"], row["epoch"], row["valid"]) == ("BTC/USD", 3, True)
    assert wide_row(book(0, valid=False)) is None  # only valid books
    no_event = {**book(0), "ts_event": None}
    assert wide_row(no_event)["timestamp"] == TS + 100  # type: ignore[index]


def test_written_next_to_the_raw_topic_with_the_same_rules(tmp_path: Path) -> None:
    writer = ParquetWriter(tmp_path, derived={TOPIC: [WideBook(10)]})
    writer.add(TOPIC, 0, 0, book(0))
    writer.add(TOPIC, 0, 1, book(1, valid=False))
    writer.add(TOPIC, 0, 2, book(2, levels=3))
    writer.add(TOPIC, 0, 3, {**book(3), "symbol": "ETH/USD"})
    assert writer.flush_all() == [Commit(TOPIC, 0, 4)]  # one commit covers both datasets
    wide = tmp_path / "kracked.book.top.wide"
    files = sorted(str(f.relative_to(wide)) for f in wide.rglob("*.parquet"))
    assert files == [
        "symbol=BTC-USD/date=2024-11-12/0-0-2.parquet",
        "symbol=ETH-USD/date=2024-11-12/0-3-3.parquet",
    ]
    table = pq.ParquetFile(wide / files[0]).read()
    assert table.schema.names == [*SEED_HEADER.split(","), "epoch", "valid"]
    assert all(table.schema.field(n).type == DECIMAL_TYPE for n in SEED_HEADER.split(",")[1:])
    first, second = table.to_pylist()
    assert first["timestamp"] == dt.datetime(2024, 11, 12, 6, 50, 44, 897594, tzinfo=dt.UTC)
    assert first["ap0"] == Decimal("89705.9") and first["bv9"] == Decimal("4.763491459")
    assert second["bp2"] == Decimal("89704.6") and second["ap3"] is None
    raw = sorted((tmp_path / TOPIC).rglob("*.parquet"))
    assert sum(pq.ParquetFile(f).metadata.num_rows for f in raw) == 4  # the raw archive keeps all
    described = duckdb.execute(
        f"DESCRIBE SELECT * FROM read_parquet('{wide}/**/*.parquet', hive_partitioning=true)"
    ).fetchall()
    columns = [(r[0], r[1]) for r in described]
    assert [c for c, _ in columns] == [*SEED_HEADER.split(","), "epoch", "valid", "date", "symbol"]
    assert dict(columns)["ap0"] == "DECIMAL(38,18)"
    assert dict(columns)["timestamp"] == "TIMESTAMP WITH TIME ZONE"


def test_wide_only_and_bad_book(tmp_path: Path) -> None:
    writer = ParquetWriter(tmp_path, derived={TOPIC: [WideBook(10)]}, raw=())
    with pytest.raises(ValueError):
        writer.add(TOPIC, 0, 0, {**book(0), "asks": [{"price": "1.0000000000000000001", "qty": "1"}]})
    writer.add(TOPIC, 0, 1, book(1))
    assert writer.flush_all() == [Commit(TOPIC, 0, 2)]
    assert not (tmp_path / TOPIC).exists()
    assert len(list((tmp_path / "kracked.book.top.wide").rglob("*.parquet"))) == 1
