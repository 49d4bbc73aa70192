"""Buffers decoded records per Kafka partition and writes them as Parquet files, exactly once.

The service drives it (no Kafka import here):

    writer = ParquetWriter(root)
    for msg in batch:                                    # decoded records, in offset order
        try:
            writer.add(msg.topic, msg.partition, msg.offset, record)
        except ValueError as exc:                         # this record alone cannot be stored
            dead_letter(msg, exc)
    for commit in writer.flush_ready(time.monotonic()):   # files renamed and fsynced
        ... dead-letter writer.drain_rejected() first, then commit commit.offset for the partition
    writer.flush_all()                                    # on shutdown / partition revoke

Why offsets are committed per partition, after ALL of its buffers are written: one Kafka partition
carries many symbols and days, so its records land in several `symbol=/date=` files. Offset N+1 may
be committed only when every record ≤ N is in a renamed file. The writer therefore flushes all the
open buffers of a (topic, partition) together, one file per folder named with the offsets of the
records IN that file, and only then returns `next offset = last offset seen + 1` for it. Offsets that
produced no row (dead-lettered by the caller, `skip`ped, or invalid books for the wide dataset) are
covered too: they were handled before the commit.

Why a replay never duplicates rows: after a crash between the renames and the commit, Kafka delivers
the same offsets again, but the writer's roll points depend on the wall clock (`max_age_s`), so the
new files may cut the offsets differently (`0-100-148` instead of `0-100-198`). Instead of relying on
deterministic boundaries, the first flush of each partition scans its folders (deleting temp files
and crash leftovers) and notes the folders holding files at or above the offset it resumed from;
before renaming a file into such a folder it removes every part of that partition that starts at or
after the resume point and ends at or after the new file's first offset (`layout.supersede`). Those
rows are uncommitted by construction (Kafka resumes at a committed offset, and commits are only ever
made at flush boundaries, so no part straddles it), so they are being replayed now. Parts, not rows,
are the unit: a compacted file keeps the list of the flushes it holds (`kracked.parts`), and only
its replayed parts are cut out. Deletion happens before the rename: a crash in between loses only
rows that will be replayed, never shows them twice. Resetting a consumer group to an offset that is
not a commit point cannot be made exactly-once this way: the writer keeps the straddling file, logs
it, and rows may repeat.

Rolls: a partition is flushed when its buffered rows reach `max_rows`, its estimated size
`max_bytes`, or when `max_age_s` has passed since `flush_ready` first saw it non-empty; the total
buffered size of all partitions is capped by `max_total_bytes` (the largest are flushed first).
Sizes are estimated Arrow bytes (what the file holds before compression); the Python buffers take
about three times that. Files are zstd, row groups of at most 128k rows / 64 MiB (`layout.WriteOptions`).

With the shared consumer runtime: `handle` → `add` (dead-letter on ValueError), `flush` →
`flush_ready(time.monotonic())` and dead-letter `drain_rejected()`, `checkpoint` → for each partition
the offset of the last `Commit` returned (never the consumer position), revoke → `flush_partition`
then `discard`, stop → `flush_all`. Call `compact` from the same thread between flushes.
"""

from __future__ import annotations

import logging
from bisect import bisect_left
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import pyarrow as pa

from consumers.parquet import layout
from consumers.parquet.arrow_schema import TableSpec, load_avro_schema, table_spec
from kracked.errors import ConfigError
from schemas.topics import find_topic, schema_dir

log = logging.getLogger(__name__)

MiB = 1024 * 1024
_SYMBOL_DIRS = layout.SYMBOL_DIRS


class Commit(NamedTuple):
    """Offset to commit for a partition: every record below `offset` is in a renamed file."""

    topic: str
    partition: int
    offset: int


class Rejected(NamedTuple):
    """A row Arrow refused at flush time (left out of the file): dead-letter it before committing."""

    topic: str
    partition: int
    offset: int
    values: dict[str, Any]
    reason: str


class DerivedDataset(Protocol):
    """A dataset computed from a topic's records (e.g. `wide.WideBook`), written with the same rules."""

    @property
    def suffix(self) -> str:
        """Appended to the topic name to name the dataset folder (e.g. `.wide`)."""
        ...

    @property
    def spec(self) -> TableSpec: ...

    def row(self, record: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """The row for `record`, or None when the record makes no row (ValueError: cannot store it)."""
        ...


@dataclass(frozen=True)
class WriterConfig:
    """Roll and file settings (see the module doc)."""

    max_rows: int = 500_000
    max_bytes: int = 32 * MiB
    max_age_s: float = 300.0
    max_total_bytes: int = 128 * MiB
    write: layout.WriteOptions = field(default_factory=layout.WriteOptions)


@dataclass(frozen=True)
class _Dataset:
    dirname: str
    spec: TableSpec
    derive: Callable[[Mapping[str, Any]], Mapping[str, Any] | None] | None


class _Group:
    """Rows of one (dataset, symbol folder, day) in the current batch of a partition."""

    __slots__ = ("offsets", "rows")

    def __init__(self) -> None:
        self.rows: list[tuple[Any, ...]] = []
        self.offsets: list[int] = []


GroupKey = tuple[int, str, int | None]  # dataset index, `symbol=` folder, day number
# extract, symbol index, first time index, time units per day, day_of (-1: no such field)
_FastPath = tuple[
    Callable[[Mapping[str, Any]], tuple[Any, ...]], int, int, int, Callable[[Sequence[Any]], int | None]
]


class _Partition:
    __slots__ = (
        "committed",
        "datasets",
        "dirty",
        "durable",
        "fast",
        "groups",
        "next_offset",
        "partition",
        "prepared",
        "started",
        "topic",
    )

    def __init__(self, topic: str, partition: int, datasets: tuple[_Dataset, ...]) -> None:
        self.topic = topic
        self.partition = partition
        self.datasets = datasets
        self.groups: dict[GroupKey, _Group] = {}
        self.next_offset: int | None = None  # last offset seen + 1
        self.committed: int | None = None  # last commit returned
        self.durable: int | None = None  # offsets below it (from this run's start) are in files
        self.started: float | None = None  # `now` at which flush_ready first saw the batch
        self.prepared = False  # recovery scan done since start / rewind / failure
        self.dirty: set[str] = set()  # folders that may hold files this partition replays
        self.fast: _FastPath | None = None
        if len(datasets) == 1 and datasets[0].derive is None:
            spec = datasets[0].spec
            ti, per_day = spec.time_indexes[0] if spec.time_indexes else (-1, 1)
            si = -1 if spec.symbol_index is None else spec.symbol_index
            self.fast = (spec.extract, si, ti, per_day, spec.day_of)


class ParquetWriter:
    """Archive records of any set of topics as Hive-style Parquet datasets under `root`."""

    def __init__(
        self,
        root: str | Path,
        *,
        config: WriterConfig | None = None,
        topic_prefix: str = "",
        schema_for: Callable[[str], Mapping[str, Any]] | None = None,
        derived: Mapping[str, Sequence[DerivedDataset]] | None = None,
        raw: bool | Collection[str] = True,
    ) -> None:
        """`schema_for(topic)` returns the topic's Avro schema (default: `schemas/avro/<topic>.avsc`,
        the topic name stripped of `topic_prefix`). `derived` maps a topic (as read) to extra datasets
        made from it; `raw` says which topics are archived as they are (True: all, or a collection).
        """
        self.root = Path(root)
        self.config = config or WriterConfig()
        self._prefix = topic_prefix
        self._schema_for = schema_for or self._default_schema
        self._derived = dict(derived or {})
        self._raw = raw
        self._topics: dict[str, tuple[_Dataset, ...]] = {}
        self._partitions: dict[tuple[str, int], _Partition] = {}
        self._rejected: list[Rejected] = []
        self._carry: list[Commit] = []  # commits made durable by a flush call that then failed

    # ------------------------------------------------------------------------------ intake

    def add(self, topic: str, partition: int, offset: int, record: Mapping[str, Any]) -> None:
        """Buffer one decoded record (no I/O). ValueError: this record cannot be stored (dead-letter it;
        its offset still counts as handled, so dead-letter before committing what flush returns)."""
        p = self._partitions.get((topic, partition))
        if p is None:
            p = self._open(topic, partition)
        if p.durable is None or offset < p.next_offset:  # type: ignore[operator]
            self._first_or_rewind(p, offset)
        p.next_offset = offset + 1
        groups = p.groups
        fast = p.fast
        if fast is not None:  # one raw dataset: the common case, with as few steps as possible
            extract, si, ti, per_day, day_of = fast
            values = extract(record)
            symbol = values[si] if si >= 0 else None
            stamp = values[ti] if ti >= 0 else None
            key: GroupKey = (
                0,
                _SYMBOL_DIRS.get(symbol) or layout.symbol_dir(symbol),
                stamp // per_day if type(stamp) is int else day_of(values),
            )
            group = groups.get(key)
            if group is None:
                layout.date_dir(key[2])  # ValueError now, for this record, rather than at flush
                group = groups[key] = _Group()
            group.rows.append(values)
            group.offsets.append(offset)
            return
        keyed: list[tuple[GroupKey, tuple[Any, ...]]] = []
        for index, dataset in enumerate(p.datasets):
            source = record if dataset.derive is None else dataset.derive(record)
            if source is None:
                continue
            spec = dataset.spec
            values = spec.extract(source)
            at = spec.symbol_index
            folder = layout.symbol_dir(values[at] if at is not None else None)
            day = spec.day_of(values)
            layout.date_dir(day)  # ValueError now, for this record, rather than at flush
            keyed.append(((index, folder, day), values))
        for key, values in keyed:  # all datasets accepted the record: buffer it everywhere at once
            group = groups.get(key)
            if group is None:
                group = groups[key] = _Group()
            group.rows.append(values)
            group.offsets.append(offset)

    def skip(self, topic: str, partition: int, offset: int) -> None:
        """Count `offset` as handled without a row (tombstone, record dead-lettered before `add`)."""
        p = self._partitions.get((topic, partition))
        if p is None:
            p = self._open(topic, partition)
        if p.durable is None or offset < p.next_offset:  # type: ignore[operator]
            self._first_or_rewind(p, offset)
        p.next_offset = offset + 1

    # ------------------------------------------------------------------------------ flushing

    def flush_ready(self, now: float) -> list[Commit]:
        """Flush the partitions whose batch is full or old; return the offsets now safe to commit.

        `now` is any monotonic clock in seconds (the age of a batch counts from the first call that
        saw it). Partitions with nothing buffered but newer offsets (skips) are returned at no cost.
        """
        commits, self._carry = self._carry, []
        try:
            self._flush_ready(now, commits)
        except BaseException:
            self._carry = commits  # partitions flushed before the failure: report them next time
            raise
        return commits

    def _flush_ready(self, now: float, commits: list[Commit]) -> None:
        cfg = self.config
        waiting: list[tuple[float, _Partition]] = []
        for p in list(self._partitions.values()):
            if not p.groups:
                p.started = None
                commit = self._commit(p)
                if commit is not None:
                    commits.append(commit)
                continue
            if p.started is None:
                p.started = now
            rows, size = self._size(p)
            if rows >= cfg.max_rows or size >= cfg.max_bytes or now - p.started >= cfg.max_age_s:
                commits.append(self._flush(p))
            else:
                waiting.append((size, p))
        total = sum(size for size, _ in waiting)
        if total > cfg.max_total_bytes:
            # Memory cap across partitions: flush the biggest until half the budget is free.
            for size, p in sorted(waiting, key=lambda item: item[0], reverse=True):
                commits.append(self._flush(p))
                total -= size
                if total <= cfg.max_total_bytes / 2:
                    break

    def flush_partition(self, topic: str, partition: int) -> Commit | None:
        """Flush one partition now (e.g. before it is revoked); None if nothing new to commit."""
        p = self._partitions.get((topic, partition))
        if p is None:
            return None
        return self._flush(p) if p.groups else self._commit(p)

    def flush_all(self) -> list[Commit]:
        """Flush everything (shutdown); return every partition's offset to commit."""
        commits, self._carry = self._carry, []
        try:
            for p in list(self._partitions.values()):
                commit = self._flush(p) if p.groups else self._commit(p)
                if commit is not None:
                    commits.append(commit)
        except BaseException:
            self._carry = commits
            raise
        return commits

    def discard(self, topic: str, partition: int) -> None:
        """Forget a partition's buffered rows and state (revoked without flushing: it will be replayed)."""
        self._partitions.pop((topic, partition), None)

    def drain_rejected(self) -> list[Rejected]:
        """Rows refused at flush time since the last call (normally none: add() checks what it can)."""
        out, self._rejected = self._rejected, []
        return out

    def buffered_rows(self) -> int:
        return sum(len(g.rows) for p in self._partitions.values() for g in p.groups.values())

    def recover(self, topic: str, partition: int) -> int:
        """Delete a partition's temp files and crash leftovers now (also done before its first flush)."""
        removed = 0
        for dataset in self._datasets(topic):
            for folder in layout.iter_folders(self.root, dataset.dirname):
                removed += layout.reconcile_folder(folder, partition, self.config.write.fsync)
        return removed

    # ------------------------------------------------------------------------------ internals

    def _default_schema(self, topic: str) -> Mapping[str, Any]:
        try:
            bare = find_topic(topic, self._prefix)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        path = schema_dir() / bare.schema_file
        if not path.is_file():
            raise ConfigError(f"no Avro schema for topic {topic!r} ({path})")
        return load_avro_schema(path)

    def _datasets(self, topic: str) -> tuple[_Dataset, ...]:
        datasets = self._topics.get(topic)
        if datasets is not None:
            return datasets
        out = []
        if self._raw is True or (not isinstance(self._raw, bool) and topic in self._raw):
            out.append(_Dataset(topic, table_spec(self._schema_for(topic), name=topic), None))
        for derived in self._derived.get(topic, ()):
            out.append(_Dataset(topic + derived.suffix, derived.spec, derived.row))
        if not out:
            raise ConfigError(f"topic {topic!r} has no dataset to write (raw archiving off, nothing derived)")
        datasets = self._topics[topic] = tuple(out)
        return datasets

    def _open(self, topic: str, partition: int) -> _Partition:
        p = self._partitions[(topic, partition)] = _Partition(topic, partition, self._datasets(topic))
        return p

    def _first_or_rewind(self, p: _Partition, offset: int) -> None:
        if p.next_offset is not None and offset < p.next_offset:
            self._rewind(p, offset)
        if p.durable is None:
            p.durable = offset

    def _rewind(self, p: _Partition, offset: int) -> None:
        # Kafka delivers an offset again (a seek after an error or a rebalance): drop the buffered rows
        # from there on; if it goes below what this run already wrote, treat it as a new resume point.
        log.warning(
            "%s[%d]: offset %d again after %s, rewinding", p.topic, p.partition, offset, p.next_offset
        )
        for key, group in list(p.groups.items()):
            cut = bisect_left(group.offsets, offset)
            if cut == 0:
                del p.groups[key]
            else:
                del group.rows[cut:]
                del group.offsets[cut:]
        p.next_offset = offset
        if p.durable is None or offset < p.durable:
            p.durable = offset
            p.prepared = False

    def _commit(self, p: _Partition) -> Commit | None:
        if p.next_offset is None or p.next_offset == p.committed:
            return None
        p.committed = p.next_offset
        return Commit(p.topic, p.partition, p.next_offset)

    def _size(self, p: _Partition) -> tuple[int, float]:
        rows = 0
        size = 0.0
        for key, group in p.groups.items():
            n = len(group.rows)
            rows += n
            size += n * p.datasets[key[0]].spec.row_bytes
        return rows, size

    def _prepare(self, p: _Partition) -> None:
        """First flush since start (or a rewind/failure): clean leftovers, find folders to supersede in."""
        assert p.durable is not None  # set by the add() that created the batch
        dirty: set[str] = set()
        fsync = self.config.write.fsync
        for dataset in p.datasets:
            for folder in layout.iter_folders(self.root, dataset.dirname):
                layout.reconcile_folder(folder, p.partition, fsync)
                if any(f.last >= p.durable for f in layout.list_files(folder, p.partition)):
                    dirty.add(str(folder))
        if dirty:
            log.info(
                "%s[%d]: %d folders hold files at or after offset %d (replay)",
                p.topic,
                p.partition,
                len(dirty),
                p.durable,
            )
        p.dirty = dirty
        p.prepared = True

    def _flush(self, p: _Partition) -> Commit:
        if not p.prepared:
            self._prepare(p)
        try:
            for key in sorted(p.groups, key=lambda k: (k[0], k[1], -1 if k[2] is None else k[2])):
                self._write_group(p, key, p.groups[key])
        except BaseException:
            p.prepared = False  # files of this batch may exist: rescan before the retry
            raise
        p.groups = {}
        p.started = None
        p.durable = p.next_offset
        commit = self._commit(p)
        assert commit is not None  # a batch always moves next_offset past the last commit
        return commit

    def _write_group(self, p: _Partition, key: GroupKey, group: _Group) -> None:
        dataset = p.datasets[key[0]]
        built = self._build(p, dataset.spec, group)
        if built is None:
            return
        table, offsets = built
        first, last = offsets[0], offsets[-1]
        folder = self.root / dataset.dirname / key[1] / layout.date_dir(key[2])
        name = str(folder)
        durable = p.durable
        options = self.config.write

        def supersede() -> None:
            if name in p.dirty and durable is not None:
                layout.supersede(folder, p.partition, first, durable, options)
                p.dirty.discard(name)

        layout.write_atomic(
            folder,
            p.partition,
            [(first, last, table.num_rows)],
            table,
            options,
            dataset.spec.dictionary_columns,
            supersede,
        )
        if table.num_rows >= 1000:
            dataset.spec.row_bytes = (dataset.spec.row_bytes + table.nbytes / table.num_rows) / 2

    def _build(self, p: _Partition, spec: TableSpec, group: _Group) -> tuple[pa.Table, list[int]] | None:
        try:
            return _to_table(spec, group.rows), group.offsets
        except _CONVERSION_ERRORS:
            pass
        # Some value does not fit its column (add() checks decimals; the Avro decoder guarantees the
        # rest, so this is a bug upstream): keep the good rows, report the others.
        problems = _bad_rows(spec, group.rows)
        if not problems:
            raise RuntimeError(f"{spec.name}: Arrow refused a batch whose rows are each valid")
        rows, offsets = [], []
        for index, (values, offset) in enumerate(zip(group.rows, group.offsets, strict=True)):
            problem = problems.get(index)
            if problem is None:
                rows.append(values)
                offsets.append(offset)
                continue
            log.error("%s[%d]@%d: row left out of %s: %s", p.topic, p.partition, offset, spec.name, problem)
            self._rejected.append(
                Rejected(p.topic, p.partition, offset, dict(zip(spec.names, values, strict=True)), problem)
            )
        if not rows:
            return None
        return _to_table(spec, rows), offsets


_CONVERSION_ERRORS = (pa.ArrowException, ValueError, TypeError, OverflowError)
_CHUNK = 4096


def _to_table(spec: TableSpec, rows: list[tuple[Any, ...]]) -> pa.Table:
    # One C-level pass per column (faster than zip(*rows)), and the symbol column is never built.
    arrays = [spec.columns[i].to_arrow(list(map(itemgetter(i), rows))) for i in spec.file_indexes]
    return pa.Table.from_arrays(arrays, schema=spec.file_schema)


def _bad_rows(spec: TableSpec, rows: list[tuple[Any, ...]]) -> dict[int, str]:
    """Row index → reason, for the values Arrow refuses: failing columns, then chunks, then values."""
    problems: dict[int, str] = {}
    for i in spec.file_indexes:
        column = spec.columns[i]
        values = list(map(itemgetter(i), rows))
        try:
            column.to_arrow(values)
            continue
        except _CONVERSION_ERRORS:
            pass
        for start in range(0, len(values), _CHUNK):
            chunk = values[start : start + _CHUNK]
            try:
                column.to_arrow(chunk)
                continue
            except _CONVERSION_ERRORS:
                pass
            for k, value in enumerate(chunk):
                try:
                    column.to_arrow([value])
                except _CONVERSION_ERRORS as exc:
                    problems.setdefault(start + k, f"{column.name}: {exc}")
    return problems
