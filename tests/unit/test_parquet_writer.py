"""Parquet writer: layout, exact round trip, DuckDB/pandas reads, commits, crash and replay safety."""

from __future__ import annotations

import datetime as dt
import json
import os
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from consumers.parquet import layout
from consumers.parquet.compact import compact
from consumers.parquet.writer import Commit, ParquetWriter, WriterConfig

TOPIC = "kraken.trade"
DAY = 1_731_369_600_000_000  # 2024-11-12T00:00:00Z in µs
SYMBOLS = ("BTC/USD", "ETH/USD", "DOGE/USD")


def trade(
    offset: int, symbol: str | None = None, ts: int | None = None, price: str | None = None
) -> dict[str, Any]:
    return {
        "symbol": symbol or SYMBOLS[offset % len(SYMBOLS)],
        "type": "update",
        "side": "buy" if offset % 2 else "sell",
        "price": price or f"{89000 + offset}.{offset % 10}",
        "qty": f"0.{offset:08d}",
        "ord_type": "limit",
        "trade_id": offset,  # == offset: lets tests count rows per offset
        "ts_event": DAY + offset * 1_000_000 if ts is None else ts,
        "ts_recv": DAY + offset * 1_000_000 + 17,
    }


def feed(writer: ParquetWriter, offsets: range, partition: int = 0, **kw: Any) -> None:
    for offset in offsets:
        writer.add(TOPIC, partition, offset, trade(offset, **kw))


def files(root: Path, topic: str = TOPIC) -> list[Path]:
    return sorted((root / topic).glob("*/*/*.parquet"))


def rows(root: Path, topic: str = TOPIC) -> list[dict[str, Any]]:
    return [r for f in files(root, topic) for r in pq.ParquetFile(f).read().to_pylist()]


def trade_ids(root: Path) -> list[int]:
    return sorted(r["trade_id"] for r in rows(root))


def test_layout_and_exact_round_trip(tmp_path: Path) -> None:
    writer = ParquetWriter(tmp_path)
    feed(writer, range(6))
    assert writer.flush_all() == [Commit(TOPIC, 0, 6)]
    names = [str(f.relative_to(tmp_path)) for f in files(tmp_path)]
    # Each file is named with the offsets of the records IN it (symbols interleave in the partition).
    assert names == [
        "kraken.trade/symbol=BTC-USD/date=2024-11-12/0-0-3.parquet",
        "kraken.trade/symbol=DOGE-USD/date=2024-11-12/0-2-5.parquet",
        "kraken.trade/symbol=ETH-USD/date=2024-11-12/0-1-4.parquet",
    ]
    btc = pq.ParquetFile(files(tmp_path)[0]).read()
    assert "symbol" not in btc.schema.names  # a Hive column: it comes from the path
    assert str(btc.schema.field("price").type) == "decimal128(38, 18)"
    assert str(btc.schema.field("ts_event").type) == "timestamp[us, tz=UTC]"
    assert btc.to_pylist()[1] == {
        "type": "update",
        "side": "buy",
        "price": Decimal("89003.3"),
        "qty": Decimal("0.00000003"),
        "ord_type": "limit",
        "trade_id": 3,
        "ts_event": dt.datetime(2024, 11, 12, 0, 0, 3, tzinfo=dt.UTC),
        "ts_recv": dt.datetime(2024, 11, 12, 0, 0, 3, 17, tzinfo=dt.UTC),
    }
    meta = pq.ParquetFile(files(tmp_path)[0]).metadata
    assert meta.row_group(0).column(0).compression == "ZSTD"
    assert json.loads(meta.metadata[b"kracked.parts"]) == [[0, 3, 2]]
    assert not list(tmp_path.rglob(".tmp-*"))


def test_duckdb_and_pandas_read_the_dataset_directly(tmp_path: Path) -> None:
    writer = ParquetWriter(tmp_path)
    feed(writer, range(30))
    writer.add(TOPIC, 0, 30, trade(30, ts=DAY + 86_400_000_000 + 5, price="0.000000000000000001"))
    writer.flush_all()
    glob = f"{tmp_path}/{TOPIC}/**/*.parquet"
    con = duckdb.connect()
    described = con.execute(
        f"DESCRIBE SELECT * FROM read_parquet('{glob}', hive_partitioning=true)"
    ).fetchall()
    types = {row[0]: row[1] for row in described}
    assert types["price"] == "DECIMAL(38,18)"
    assert types["ts_event"] == "TIMESTAMP WITH TIME ZONE"
    assert types["date"] == "DATE"
    assert types["symbol"] == "VARCHAR"
    got = con.execute(
        f"SELECT symbol, date, count(*), sum(price) FROM read_parquet('{glob}', hive_partitioning=true) "
        "GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    assert got == [
        (
            "BTC-USD",
            dt.date(2024, 11, 12),
            10,
            Decimal(sum(Decimal(f"{89000 + i}.{i % 10}") for i in range(0, 30, 3))),
        ),
        ("BTC-USD", dt.date(2024, 11, 13), 1, Decimal("0.000000000000000001")),
        (
            "DOGE-USD",
            dt.date(2024, 11, 12),
            10,
            sum(Decimal(f"{89000 + i}.{i % 10}") for i in range(2, 30, 3)),
        ),
        (
            "ETH-USD",
            dt.date(2024, 11, 12),
            10,
            sum(Decimal(f"{89000 + i}.{i % 10}") for i in range(1, 30, 3)),
        ),
    ]
    frame = pd.read_parquet(tmp_path / TOPIC)
    assert len(frame) == 31
    assert set(frame["symbol"].astype(str)) == {"BTC-USD", "ETH-USD", "DOGE-USD"}
    assert str(frame["ts_event"].dtype) == "datetime64[us, UTC]"
    assert frame.loc[frame["trade_id"] == 30, "price"].item() == Decimal("0.000000000000000001")
    table = ds.dataset(tmp_path / TOPIC, partitioning="hive").to_table()
    assert table.num_rows == 31


def test_partition_keys_fallbacks(tmp_path: Path) -> None:
    avro = {
        "type": "record",
        "name": "C",
        "fields": [
            {"name": "symbol", "type": ["null", "string"], "default": None},
            {"name": "ts_event", "type": ["null", {"type": "long", "logicalType": "timestamp-micros"}]},
            {"name": "ts", "type": ["null", {"type": "long", "logicalType": "timestamp-micros"}]},
        ],
    }
    writer = ParquetWriter(tmp_path, schema_for=lambda _t: avro)
    writer.add("c", 3, 10, {"symbol": None, "ts_event": None, "ts": DAY})  # no symbol, time from ts
    writer.add("c", 3, 11, {"symbol": "A/B", "ts_event": DAY + 86_400_000_000, "ts": DAY})  # ts_event wins
    writer.add("c", 3, 12, {"symbol": "A/B", "ts_event": None, "ts": None})  # no time at all
    writer.add(  # datetime values (a decoder that converts logical types) are accepted as well
        "c",
        3,
        13,
        {"symbol": "A/B", "ts_event": dt.datetime(2024, 11, 12, 23, 59, tzinfo=dt.UTC), "ts": None},
    )
    writer.flush_all()
    assert [str(f.relative_to(tmp_path / "c")) for f in files(tmp_path, "c")] == [
        "symbol=A-B/date=2024-11-12/3-13-13.parquet",
        "symbol=A-B/date=2024-11-13/3-11-11.parquet",
        "symbol=A-B/date=__HIVE_DEFAULT_PARTITION__/3-12-12.parquet",
        "symbol=_none_/date=2024-11-12/3-10-10.parquet",
    ]
    got = duckdb.execute(
        f"SELECT symbol, date FROM read_parquet('{tmp_path}/c/**/*.parquet', hive_partitioning=true) ORDER BY ts_event"
    ).fetchall()
    assert sorted(got, key=str) == sorted(
        [
            ("_none_", dt.date(2024, 11, 12)),
            ("A-B", dt.date(2024, 11, 13)),
            ("A-B", None),
            ("A-B", dt.date(2024, 11, 12)),
        ],
        key=str,
    )


def test_commits_follow_rolls_and_cover_only_renamed_files(tmp_path: Path) -> None:
    writer = ParquetWriter(tmp_path, config=WriterConfig(max_rows=10, max_age_s=60))
    feed(writer, range(9))
    assert writer.flush_ready(now=0.0) == []  # 9 rows < 10, age 0
    assert files(tmp_path) == []
    feed(writer, range(9, 12))
    assert writer.flush_ready(now=1.0) == [Commit(TOPIC, 0, 12)]
    assert trade_ids(tmp_path) == list(range(12))  # every offset below the commit is on disk
    feed(writer, range(12, 14))
    assert writer.flush_ready(now=2.0) == []
    assert writer.flush_ready(now=61.0) == []  # the age counts from the first call that saw the batch
    assert writer.flush_ready(now=62.0) == [Commit(TOPIC, 0, 14)]
    assert trade_ids(tmp_path) == list(range(14))
    assert writer.flush_ready(now=63.0) == []


def test_partitions_commit_independently(tmp_path: Path) -> None:
    writer = ParquetWriter(tmp_path, config=WriterConfig(max_rows=5))
    feed(writer, range(5), partition=0)
    feed(writer, range(100, 102), partition=1)
    assert writer.flush_ready(now=0) == [Commit(TOPIC, 0, 5)]
    assert sorted(writer.flush_all()) == [Commit(TOPIC, 1, 102)]
    assert {f.name.split("-")[0] for f in files(tmp_path)} == {"0", "1"}


def test_memory_cap_flushes_the_biggest_partition(tmp_path: Path) -> None:
    writer = ParquetWriter(tmp_path, config=WriterConfig(max_total_bytes=2_000))
    feed(writer, range(50), partition=0)
    feed(writer, range(2), partition=1)
    assert writer.flush_ready(now=0) == [Commit(TOPIC, 0, 50)]
    assert writer.buffered_rows() == 2


def test_failed_flush_commits_nothing_and_retry_does_not_duplicate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = ParquetWriter(tmp_path)
    feed(writer, range(9), partition=0)  # 3 files
    feed(writer, range(1000, 1009), partition=1)  # 3 files
    real_replace = os.replace
    calls = {"n": 0}

    def flaky_replace(src: Any, dst: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 5:  # partition 0 done, partition 1 half renamed
            raise OSError("disk full")
        real_replace(src, dst)

    monkeypatch.setattr(layout.os, "replace", flaky_replace)
    with pytest.raises(OSError, match="disk full"):
        writer.flush_all()
    assert len(files(tmp_path)) == 4
    assert not list(tmp_path.rglob(".tmp-*"))
    feed(writer, range(1009, 1012), partition=1)  # more rows arrive before the retry: the cut differs
    # Partition 0's commit, made durable by the failed call, is not lost; partition 1's covers all.
    assert writer.flush_all() == [Commit(TOPIC, 0, 9), Commit(TOPIC, 1, 1012)]
    assert trade_ids(tmp_path) == [*range(9), *range(1000, 1012)]


def test_temp_files_of_a_crash_are_deleted_on_start(tmp_path: Path) -> None:
    folder = tmp_path / TOPIC / "symbol=BTC-USD" / "date=2024-11-12"
    folder.mkdir(parents=True)
    (folder / ".tmp-0-0-9-deadbeef").write_bytes(b"half a parquet file")
    (folder / ".tmp-1-0-9-deadbeef").write_bytes(b"another partition's file: not ours")
    writer = ParquetWriter(tmp_path)
    feed(writer, range(3))
    writer.flush_all()
    assert not (folder / ".tmp-0-0-9-deadbeef").exists()
    assert (folder / ".tmp-1-0-9-deadbeef").exists()
    assert ParquetWriter(tmp_path).recover(TOPIC, 1) == 1
    assert not (folder / ".tmp-1-0-9-deadbeef").exists()
    # DuckDB's glob never sees temp files either (no .parquet suffix).
    assert layout.tmp_name(0, 1, 2).startswith(".tmp-0-1-2-") and not layout.tmp_name(0, 1, 2).endswith(
        ".parquet"
    )


def test_replay_with_same_cut_overwrites_the_same_files(tmp_path: Path) -> None:
    first = ParquetWriter(tmp_path)
    feed(first, range(10))
    first.flush_all()
    before = [f.name for f in files(tmp_path)]
    # Crash before the commit: a new process reads the same offsets again.
    second = ParquetWriter(tmp_path)
    feed(second, range(10))
    second.flush_all()
    assert [f.name for f in files(tmp_path)] == before
    assert trade_ids(tmp_path) == list(range(10))


def test_replay_with_another_cut_does_not_duplicate(tmp_path: Path) -> None:
    # Run 1 commits 0..99, writes 100..199 and dies before committing 200.
    run1 = ParquetWriter(tmp_path, config=WriterConfig(max_rows=100))
    feed(run1, range(100))
    assert run1.flush_ready(now=0) == [Commit(TOPIC, 0, 100)]
    feed(run1, range(100, 200))
    assert run1.flush_ready(now=0) == [Commit(TOPIC, 0, 200)]  # ... lost: never committed
    # Run 2 resumes at 100 with other roll points (time-based in real life), and goes further.
    run2 = ParquetWriter(tmp_path, config=WriterConfig(max_rows=37))
    commits = []
    for offset in range(100, 260):
        run2.add(TOPIC, 0, offset, trade(offset))
        commits += run2.flush_ready(now=0)
    commits += run2.flush_all()
    assert commits[-1] == Commit(TOPIC, 0, 260)
    assert trade_ids(tmp_path) == list(range(260))
    names = {f.name for f in files(tmp_path)}
    assert {"0-0-99.parquet", "0-1-97.parquet", "0-2-98.parquet"} <= names  # committed by run 1: kept
    assert {"0-102-135.parquet", "0-100-136.parquet", "0-101-134.parquet"} <= names  # run 2's first cut
    assert not names & {"0-102-198.parquet", "0-100-199.parquet", "0-101-197.parquet"}  # run 1's, replaced


def test_replay_over_a_compacted_file_keeps_committed_parts(tmp_path: Path) -> None:
    run1 = ParquetWriter(tmp_path, config=WriterConfig(max_rows=30))
    for offset in range(90):
        run1.add(TOPIC, 0, offset, trade(offset, symbol="BTC/USD"))
        run1.flush_ready(now=0)  # commits 30, 60, 90 ... but the process dies: 60 is the last one kept
    stats = compact(tmp_path, TOPIC)
    assert stats.merged == 1 and stats.removed == 3
    assert [f.name for f in files(tmp_path)] == ["0-0-89.parquet"]
    run2 = ParquetWriter(tmp_path, config=WriterConfig(max_rows=7))
    feed(run2, range(60, 100), symbol="BTC/USD")
    run2.flush_all()
    assert trade_ids(tmp_path) == list(range(100))
    assert "0-0-59.parquet" in {f.name for f in files(tmp_path)}  # the committed parts, trimmed out


def test_records_that_cannot_be_stored(tmp_path: Path) -> None:
    writer = ParquetWriter(tmp_path)
    writer.add(TOPIC, 0, 0, trade(0))
    with pytest.raises(ValueError, match="price"):
        writer.add(TOPIC, 0, 1, trade(1, price="1.0000000000000000001"))  # 19 decimals: dead-letter it
    writer.add(TOPIC, 0, 2, trade(2, price="abc"))  # not a number: Arrow refuses it at flush
    writer.add(TOPIC, 0, 3, trade(3, price="1E-8"))  # exponent: stored exactly
    writer.skip(TOPIC, 0, 4)  # e.g. a tombstone, or a record the service could not decode
    with pytest.raises(ValueError, match="calendar"):
        writer.add(TOPIC, 0, 5, trade(5, ts=2**62))  # year > 9999: no date folder for it
    assert writer.flush_all() == [Commit(TOPIC, 0, 6)]  # handled offsets are all covered
    rejected = writer.drain_rejected()
    assert [(r.offset, r.values["trade_id"]) for r in rejected] == [(2, 2)]
    assert "price" in rejected[0].reason
    assert writer.drain_rejected() == []
    assert sorted((r["trade_id"], r["price"]) for r in rows(tmp_path)) == [
        (0, Decimal("89000.0")),
        (3, Decimal("0.00000001")),
    ]


def test_skip_only_partition_commits_without_files(tmp_path: Path) -> None:
    writer = ParquetWriter(tmp_path)
    writer.skip(TOPIC, 2, 41)
    assert writer.flush_ready(now=0) == [Commit(TOPIC, 2, 42)]
    assert writer.flush_ready(now=1) == []
    assert not (tmp_path / TOPIC).exists()


def test_redelivered_offsets_are_not_buffered_twice(tmp_path: Path) -> None:
    writer = ParquetWriter(tmp_path)
    feed(writer, range(10))
    feed(writer, range(5, 12))  # a seek back inside the unflushed batch
    assert writer.flush_all() == [Commit(TOPIC, 0, 12)]
    assert trade_ids(tmp_path) == list(range(12))
    feed(writer, range(12, 20))
    assert writer.flush_all() == [Commit(TOPIC, 0, 20)]
    # The commit of 20 failed and the consumer goes back to the previous commit point, 12.
    feed(writer, range(12, 25))
    assert writer.flush_all() == [Commit(TOPIC, 0, 25)]
    assert trade_ids(tmp_path) == list(range(25))


def test_prefixed_topic_uses_the_bare_schema(tmp_path: Path) -> None:
    writer = ParquetWriter(tmp_path, topic_prefix="backtest.")
    writer.add("backtest.kraken.trade", 0, 0, trade(0))
    writer.flush_all()
    assert len(files(tmp_path, "backtest.kraken.trade")) == 1


def test_unknown_topic_is_a_configuration_error(tmp_path: Path) -> None:
    from kracked.errors import ConfigError

    with pytest.raises(ConfigError):
        ParquetWriter(tmp_path).add("nope", 0, 0, {})


def test_bad_rows_are_found_in_a_large_batch(tmp_path: Path) -> None:
    writer = ParquetWriter(tmp_path)
    bad = {5, 4100, 9999}
    for offset in range(10_000):
        writer.add(TOPIC, 0, offset, trade(offset, price="x" if offset in bad else None))
    assert writer.flush_all() == [Commit(TOPIC, 0, 10_000)]
    assert sorted(r.offset for r in writer.drain_rejected()) == sorted(bad)
    assert trade_ids(tmp_path) == [i for i in range(10_000) if i not in bad]
