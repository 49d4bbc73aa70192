"""Compaction of small Parquet files: merges, stays exactly-once, and recovers from crashes."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from consumers.parquet import layout
from consumers.parquet.compact import compact
from consumers.parquet.writer import Commit, ParquetWriter, WriterConfig

TOPIC = "kraken.trade"
NO_FSYNC = layout.WriteOptions(fsync=False)
DAY = 1_731_369_600_000_000  # 2024-11-12T00:00:00Z


def trade(offset: int, symbol: str = "BTC/USD") -> dict[str, Any]:
    return {
        "symbol": symbol,
        "type": "update",
        "side": "buy",
        "price": f"{100 + offset}.5",
        "qty": "0.1",
        "ord_type": "limit",
        "trade_id": offset,
        "ts_event": DAY + offset,
        "ts_recv": DAY + offset,
    }


def write_small_files(root: Path, offsets: range, per_file: int, partition: int = 0, **kw: Any) -> None:
    writer = ParquetWriter(root, config=WriterConfig(max_rows=per_file))
    for offset in offsets:
        writer.add(TOPIC, partition, offset, trade(offset, **kw))
        writer.flush_ready(now=0)
    writer.flush_all()


def folder(root: Path, symbol: str = "BTC-USD") -> Path:
    return root / TOPIC / f"symbol={symbol}" / "date=2024-11-12"


def names(root: Path, symbol: str = "BTC-USD") -> list[str]:
    return sorted(f.name for f in folder(root, symbol).glob("*.parquet"))


def ids(root: Path) -> list[int]:
    got = []
    for f in sorted((root / TOPIC).glob("*/*/*.parquet")):
        got += pq.ParquetFile(f).read().column("trade_id").to_pylist()
    return sorted(got)


def test_merges_small_files_in_offset_order(tmp_path: Path) -> None:
    write_small_files(tmp_path, range(50), per_file=10)
    assert names(tmp_path) == [f"0-{a}-{a + 9}.parquet" for a in range(0, 50, 10)]
    stats = compact(tmp_path, TOPIC)
    assert (stats.merged, stats.removed) == (1, 5)
    assert names(tmp_path) == ["0-0-49.parquet"]
    merged = pq.ParquetFile(folder(tmp_path) / "0-0-49.parquet")
    assert merged.read().column("trade_id").to_pylist() == list(range(50))  # offset order kept
    parts = json.loads(merged.metadata.metadata[b"kracked.parts"])
    assert parts == [[a, a + 9, 10] for a in range(0, 50, 10)]
    assert compact(tmp_path, TOPIC).merged == 0  # nothing left to do


def test_respects_targets_partitions_and_big_files(tmp_path: Path) -> None:
    write_small_files(tmp_path, range(40), per_file=10, partition=0)
    write_small_files(tmp_path, range(1000, 1020), per_file=10, partition=1)
    stats = compact(tmp_path, TOPIC, target_rows=20, partitions=[0])
    assert stats.merged == 2
    assert names(tmp_path) == [
        "0-0-19.parquet",
        "0-20-39.parquet",
        "1-1000-1009.parquet",  # partition 1 is not ours here
        "1-1010-1019.parquet",
    ]
    size = (folder(tmp_path) / "0-0-19.parquet").stat().st_size
    # A file at or above small_bytes is never merged: 0-0-19 is big, so 0-20-39 stays alone.
    assert compact(tmp_path, TOPIC, partitions=[0], small_bytes=size).merged == 0
    assert ids(tmp_path) == list(range(40)) + list(range(1000, 1020))


def test_skips_folders_still_being_written(tmp_path: Path) -> None:
    write_small_files(tmp_path, range(20), per_file=10)
    assert compact(tmp_path, TOPIC, min_age_s=3600).merged == 0
    old = os.path.getmtime(folder(tmp_path) / "0-0-9.parquet") - 7200
    for f in folder(tmp_path).iterdir():
        os.utime(f, (old, old))
    assert compact(tmp_path, TOPIC, min_age_s=3600).merged == 1


def test_crash_between_rename_and_delete_is_finished_on_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_small_files(tmp_path, range(30), per_file=10)

    def crash(path: Path) -> None:
        raise KeyboardInterrupt("killed")

    with monkeypatch.context() as m:
        m.setattr(layout, "remove", crash)
        with pytest.raises(KeyboardInterrupt):
            compact(tmp_path, TOPIC)
    # The merged file and its sources are both there: the only moment rows are visible twice.
    assert names(tmp_path) == ["0-0-29.parquet", "0-0-9.parquet", "0-10-19.parquet", "0-20-29.parquet"]
    # The writer's first flush (or the next compaction) finishes the job.
    writer = ParquetWriter(tmp_path)
    writer.add(TOPIC, 0, 30, trade(30))
    assert writer.flush_all() == [Commit(TOPIC, 0, 31)]
    assert names(tmp_path) == ["0-0-29.parquet", "0-30-30.parquet"]
    assert ids(tmp_path) == list(range(31))


def test_crash_while_a_replay_trims_a_merged_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # 0..59 committed, 60..89 written but not committed, then everything compacted into one file.
    write_small_files(tmp_path, range(90), per_file=30)
    compact(tmp_path, TOPIC)
    assert names(tmp_path) == ["0-0-89.parquet"]
    real_remove = layout.remove

    def crash_on_original(path: Path) -> None:
        if path.name == "0-0-89.parquet":
            raise KeyboardInterrupt("killed while trimming")
        real_remove(path)

    replay = ParquetWriter(tmp_path)
    for offset in range(60, 70):
        replay.add(TOPIC, 0, offset, trade(offset))
    with monkeypatch.context() as m:
        m.setattr(layout, "remove", crash_on_original)
        with pytest.raises(KeyboardInterrupt):
            replay.flush_all()
    assert names(tmp_path) == ["0-0-59.parquet", "0-0-89.parquet"]  # trimmed copy + original
    # Restart from the commit point 60 again: the leftover copy goes, the trim is redone.
    again = ParquetWriter(tmp_path)
    for offset in range(60, 95):
        again.add(TOPIC, 0, offset, trade(offset))
    assert again.flush_all() == [Commit(TOPIC, 0, 95)]
    assert names(tmp_path) == ["0-0-59.parquet", "0-60-94.parquet"]
    assert ids(tmp_path) == list(range(95))


def test_compaction_then_replay_then_compaction_stays_exactly_once(tmp_path: Path) -> None:
    write_small_files(tmp_path, range(0, 60), per_file=7)
    compact(tmp_path, TOPIC, target_rows=25)
    write_small_files(tmp_path, range(42, 80), per_file=11)  # replay from the commit point 42
    compact(tmp_path, TOPIC)
    assert ids(tmp_path) == list(range(80))
    assert len(names(tmp_path)) == 1


class _Killed(BaseException):
    """Stands for kill -9: nothing after it runs (not even `except Exception` handlers)."""


def _run_until_killed(root: Path, start: int, stop: int, kill_at: int | None) -> int:
    """Feed offsets start..stop-1 (3 symbols, small rolls, compaction now and then); return the
    last offset a Kafka commit would hold when the process dies at the `kill_at`-th file operation."""
    committed = start
    ops = {"n": 0}
    real = {name: getattr(os, name) for name in ("replace", "unlink")}
    real_write = pq.write_table

    def counting(name: str) -> Any:
        def op(*args: Any, **kw: Any) -> Any:
            ops["n"] += 1
            if kill_at is not None and ops["n"] == kill_at:
                raise _Killed
            return (real_write if name == "write_table" else real[name])(*args, **kw)

        return op

    with pytest.MonkeyPatch.context() as m:
        m.setattr(os, "replace", counting("replace"))
        m.setattr(os, "unlink", counting("unlink"))
        m.setattr(layout.pq, "write_table", counting("write_table"))
        writer = ParquetWriter(root, config=WriterConfig(max_rows=7, write=NO_FSYNC))
        try:
            for offset in range(start, stop):
                writer.add(TOPIC, 0, offset, trade(offset, symbol=("A/B", "C/D", "E/F")[offset % 3]))
                for commit in writer.flush_ready(now=0):
                    committed = commit.offset
                if offset % 16 == 15:
                    compact(root, TOPIC, target_rows=20, options=NO_FSYNC)
            for commit in writer.flush_all():
                committed = commit.offset
        except _Killed:
            pass
    return committed


def test_exactly_once_whatever_file_operation_the_process_dies_at(tmp_path: Path) -> None:
    # A full run makes ~85 file operations (writes, renames, deletions of the writer, of replays
    # and of compaction): die at every other one. fsync is off: a killed process loses no page cache.
    total = 48
    for kill_at in range(1, 90, 2):
        root = tmp_path / f"k{kill_at}"
        committed = _run_until_killed(root, 0, total, kill_at)
        # The restarted process resumes at the committed offset and runs to the end.
        assert _run_until_killed(root, committed, total, None) == total
        assert ids(root) == list(range(total)), f"killed at file operation {kill_at}"
        compact(root, TOPIC)
        assert ids(root) == list(range(total)), f"killed at file operation {kill_at}, after compaction"
