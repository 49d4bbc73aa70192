"""Compaction: merge the small files of each `symbol=/date=` folder so a long run does not leave
thousands of tiny files.

Within a folder, the files of one Kafka partition are sorted by offset; runs of consecutive small
files (no other file of that partition between them) are merged, in offset order, into one file
named with the merged range `<partition>-<first of the first>-<last of the last>.parquet` whose
`kracked.parts` metadata lists the parts of all its sources. The merged file is written tmp + fsync +
rename, then the sources are deleted. A crash in between leaves sources whose parts are all in the
merged file: `layout.reconcile_folder` (run here first, and by the writer before its first flush)
deletes them, which finishes the compaction. Readers never see a row twice except in that crash
window, and never miss one.

Compaction never needs to know the committed offsets: a merged file may hold parts that a crashed
writer renamed but did not commit; when those offsets are replayed the writer drops exactly those
parts (`layout.supersede`). It must not race a writer on the same folder: run it in the writer's
process between flushes (what the service does), offline, or with `min_age_s` large enough that the
folders it touches are no longer written (folders holding a file or temp file younger than that are
skipped).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from consumers.parquet import layout

log = logging.getLogger(__name__)


@dataclass
class CompactStats:
    """What one `compact` call did."""

    folders: int = 0  # folders looked at
    merged: int = 0  # files written
    removed: int = 0  # small files merged away
    leftovers: int = 0  # crash leftovers deleted


@dataclass(frozen=True)
class _Info:
    file: layout.DataFile
    size: int
    rows: int
    parts: tuple[layout.Part, ...]
    schema: pa.Schema


def compact(
    root: str | Path,
    dataset: str,
    *,
    target_rows: int = 1_000_000,
    target_bytes: int = 128 * 1024 * 1024,
    small_bytes: int | None = None,
    min_age_s: float = 0.0,
    partitions: Collection[int] | None = None,
    options: layout.WriteOptions | None = None,
    now: float | None = None,
) -> CompactStats:
    """Merge runs of small files (< `small_bytes`, default a quarter of `target_bytes`) of `dataset`.

    A merged file holds at most `target_rows` rows and `target_bytes` bytes (on disk, summed over its
    sources). `partitions` limits the work to those Kafka partitions (the ones this process owns).
    """
    options = options or layout.WriteOptions()
    small = small_bytes if small_bytes is not None else target_bytes // 4
    clock = time.time() if now is None else now
    stats = CompactStats()
    for folder in layout.iter_folders(Path(root), dataset):
        if min_age_s > 0 and _newest_mtime(folder) > clock - min_age_s:
            continue
        stats.folders += 1
        if partitions is None:
            stats.leftovers += layout.reconcile_folder(folder, None, options.fsync)
        else:
            for partition in partitions:
                stats.leftovers += layout.reconcile_folder(folder, partition, options.fsync)
        by_partition: dict[int, list[layout.DataFile]] = {}
        for f in layout.list_files(folder):
            if partitions is None or f.partition in partitions:
                by_partition.setdefault(f.partition, []).append(f)
        for partition, files in by_partition.items():
            files.sort(key=lambda f: (f.first, f.last))
            for run in _runs([_info(f) for f in files], small, target_rows, target_bytes):
                _merge(folder, partition, run, options)
                stats.merged += 1
                stats.removed += len(run)
    if stats.merged:
        log.info("compacted %s: %d files merged into %d", dataset, stats.removed, stats.merged)
    return stats


def _newest_mtime(folder: Path) -> float:
    newest = 0.0
    for entry in os.scandir(folder):
        try:
            newest = max(newest, entry.stat().st_mtime)
        except FileNotFoundError:
            continue
    return newest


def _info(f: layout.DataFile) -> _Info:
    meta = pq.read_metadata(f.path)
    return _Info(
        file=f,
        size=f.path.stat().st_size,
        rows=meta.num_rows,
        parts=tuple(f.parts()),
        schema=meta.schema.to_arrow_schema().remove_metadata(),
    )


def _runs(infos: list[_Info], small: int, target_rows: int, target_bytes: int) -> list[list[_Info]]:
    """Runs of ≥ 2 consecutive small files with the same schema, each within the targets."""
    runs: list[list[_Info]] = []
    current: list[_Info] = []

    def close() -> None:
        if len(current) >= 2:
            runs.append(list(current))
        current.clear()

    for info in infos:
        if info.size >= small:
            close()
            continue
        if current and (
            not info.schema.equals(current[0].schema)
            or sum(i.rows for i in current) + info.rows > target_rows
            or sum(i.size for i in current) + info.size > target_bytes
        ):
            close()
        current.append(info)
    close()
    return runs


def _merge(folder: Path, partition: int, run: list[_Info], options: layout.WriteOptions) -> Path:
    tables = [layout.read_file(info.file.path) for info in run]
    base_meta = {k: v for k, v in (tables[0].schema.metadata or {}).items() if k != layout.PARTS_KEY}
    table = pa.concat_tables([t.replace_schema_metadata(base_meta) for t in tables])
    parts = [part for info in run for part in info.parts]
    merged = layout.write_atomic(folder, partition, parts, table, options)
    for info in run:
        if info.file.path != merged:
            layout.remove(info.file.path)
    if options.fsync:
        layout.fsync_dir(folder)
    log.debug("merged %d files into %s", len(run), merged)
    return merged
