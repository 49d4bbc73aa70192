"""Replay source: a Parquet dataset written by `kracked parquet` (`<root>/<topic>/symbol=/date=/*.parquet`).

Rows become the topic's records again: decimal columns back to decimal text (normalised: trailing
zeros of the 18-digit scale dropped, values exact), timestamps to int microseconds, the symbol from the
folder name. The dataset keeps no Kafka offsets per row, so each file is one stream whose `offset` is
the file's first offset plus the row's position (rows of a file are in offset order); files of one
partition are merged with the others by event time like any replay input.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.parquet as pq

from consumers.parquet import layout
from consumers.replay.domain import ReplayItem, event_time_us
from kracked.errors import ConfigError
from schemas.topics import Topic


def _value(value: Any) -> Any:
    if isinstance(value, Decimal):
        text = format(value.normalize(), "f")
        return text
    if isinstance(value, list):
        return [_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _value(v) for k, v in value.items()}
    return value


def _micros(table: pa.Table) -> pa.Table:
    """Timestamp columns as int64 microseconds (the form every kracked module computes with)."""
    for i, field in enumerate(table.schema):
        if pa.types.is_timestamp(field.type):
            table = table.set_column(
                i, field.name, table.column(i).cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
            )
    return table


def _symbol(folder: str) -> str | None:
    text = unquote(folder.split("=", 1)[1])
    return None if text == layout.NO_SYMBOL else text.replace("-", "/")


def _file_items(
    topic_index: int, topic: Topic, path: Path, symbol: str | None, from_us: int | None, to_us: int | None
) -> Iterator[ReplayItem]:
    parsed = layout.parse_file_name(path.name)
    if parsed is None:
        return
    partition, first, _last = parsed
    table = _micros(pq.read_table(path))
    for row, record in enumerate(table.to_pylist()):
        record = {k: _value(v) for k, v in record.items()}
        if symbol is not None:
            record["symbol"] = symbol
        event = event_time_us(record, 0)
        if (from_us is not None and event < from_us) or (to_us is not None and event >= to_us):
            continue
        key = None if symbol is None else symbol.encode()
        yield ReplayItem(
            topic_index, topic, topic.value, partition, first + row, key, record, event // 1000, event
        )


def parquet_streams(
    root: Path, topics: list[Topic], from_ms: int | None, to_ms: int | None, prefix: str = ""
) -> tuple[list[Iterator[ReplayItem]], int]:
    """One stream per data file of the topics' datasets, and the number of rows (before the time filter)."""
    if not root.is_dir():
        raise ConfigError(f"{root} is not a folder")
    streams: list[Iterator[ReplayItem]] = []
    total = 0
    found_any = False
    from_us = None if from_ms is None else from_ms * 1000
    to_us = None if to_ms is None else to_ms * 1000
    for index, topic in enumerate(topics):
        name = topic.name_with(prefix)
        if not (root / name).is_dir():
            continue
        for folder in layout.iter_folders(root, name):
            symbol_folder = next((p for p in folder.parts if p.startswith("symbol=")), None)
            for data in sorted(layout.list_files(folder)):
                found_any = True
                total += pq.read_metadata(data.path).num_rows
                symbol = _symbol(symbol_folder) if symbol_folder else None
                streams.append(_file_items(index, topic, data.path, symbol, from_us, to_us))
    if not found_any:
        names = ", ".join(t.value for t in topics)
        raise ConfigError(
            f"{root} is not a kracked Parquet dataset (no <topic>/symbol=/date=/*.parquet files for {names})"
        )
    return streams, total
