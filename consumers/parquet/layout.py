"""The on-disk layout of a kracked Parquet dataset, and the file operations that keep it exactly-once.

    <root>/<dataset>/symbol=<BASE-QUOTE>/date=<YYYY-MM-DD>/<partition>-<first>-<last>.parquet

`<dataset>` is the Kafka topic as read (with its prefix) or a derived dataset (`kracked.book.top.wide`).
`symbol` is the record's `symbol` with `/` replaced by `-` (Kraken's symbols never contain `-`, so
`BTC-USD` reads back as `BTC/USD`); records without a symbol go to `symbol=_none_`. The files do not
repeat the `symbol` column: readers get it from the path (DuckDB and pyarrow let the path win over a
file column of the same name anyway, and pandas refuses such a clash). `date` is the UTC
day of the record's time (see `arrow_schema.TIME_FIELDS`); a record with no time at all goes to Hive's
null partition `date=__HIVE_DEFAULT_PARTITION__`, which DuckDB and pyarrow read as NULL while keeping
the column typed DATE. `<partition>` is the Kafka partition and `<first>`/`<last>` the smallest and
largest Kafka offsets of the rows IN THAT FILE (other offsets of the partition went to other folders).

Invariants, and the operations here that keep them:
- A file appears whole or not at all: written as `.tmp-<partition>-…` (hidden from `*.parquet` globs
  and from pyarrow), fsynced, renamed, and the folder fsynced (`write_atomic`).
- Every file records, in its Parquet key-value metadata `kracked.parts`, the list of `[first, last,
  rows]` "parts" it holds: one per flush of the writer, several after compaction. A part is the unit
  in which rows are superseded or merged, so no operation ever needs per-row offsets.
- Leftovers of a crash are recognisable without any log: a temp file (deleted), or a file whose
  parts are all contained in another file of the same folder and partition (left by a crash between
  the rename of a merged/trimmed file and the deletion of its sources; `reconcile_folder` deletes the
  contained one, which is always the right choice, see there).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

log = logging.getLogger(__name__)

NO_SYMBOL = "_none_"
NO_DATE = "__HIVE_DEFAULT_PARTITION__"
TMP_PREFIX = ".tmp-"
SUFFIX = ".parquet"
PARTS_KEY = b"kracked.parts"

Part = tuple[int, int, int]  # first offset, last offset, rows

_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
SYMBOL_DIRS: dict[Any, str] = {}  # symbol → folder name cache (read directly by the writer's hot path)
_date_dirs: dict[int | None, str] = {}
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()


def symbol_dir(symbol: Any) -> str:
    """`symbol=` folder name of a symbol: `BTC/USD` → `symbol=BTC-USD`, none → `symbol=_none_`."""
    cached = SYMBOL_DIRS.get(symbol)
    if cached is not None:
        return cached
    if symbol is None or symbol == "":
        text = NO_SYMBOL
    else:
        raw = str(symbol).replace("/", "-")
        # Anything else that is not path- and Hive-safe is percent-encoded (pyarrow decodes it).
        text = "".join(c if c in _SAFE else "".join(f"%{b:02X}" for b in c.encode()) for c in raw)
        if text in (".", ".."):
            text = text.replace(".", "%2E")
    name = f"symbol={text}"
    if len(SYMBOL_DIRS) < 100_000:
        SYMBOL_DIRS[symbol] = name
    return name


def date_dir(day: int | None) -> str:
    """`date=` folder name of a day number (days since 1970-01-01 UTC)."""
    cached = _date_dirs.get(day)
    if cached is not None:
        return cached
    try:
        text = NO_DATE if day is None else dt.date.fromordinal(_EPOCH_ORDINAL + day).isoformat()
    except (ValueError, OverflowError):
        raise ValueError(f"time out of the calendar range (day {day} since 1970-01-01)") from None
    name = f"date={text}"
    _date_dirs[day] = name
    return name


def file_name(partition: int, first: int, last: int) -> str:
    return f"{partition}-{first}-{last}{SUFFIX}"


def tmp_name(partition: int, first: int, last: int) -> str:
    # Starts with '.', no .parquet suffix: invisible to `**/*.parquet` globs and to pyarrow.dataset.
    return f"{TMP_PREFIX}{partition}-{first}-{last}-{uuid.uuid4().hex[:12]}"


@dataclass(frozen=True, order=True)
class DataFile:
    """A data file of a folder, from its name."""

    partition: int
    first: int
    last: int
    path: Path

    def parts(self) -> list[Part]:
        """The file's parts from its metadata (a single part from the name for foreign files)."""
        meta = pq.read_metadata(self.path)
        raw = (meta.metadata or {}).get(PARTS_KEY)
        if raw:
            return [(int(a), int(b), int(n)) for a, b, n in json.loads(raw)]
        return [(self.first, self.last, meta.num_rows)]


def parse_file_name(name: str) -> tuple[int, int, int] | None:
    """(partition, first, last) of a data file name, None for anything else."""
    if not name.endswith(SUFFIX) or name.startswith("."):
        return None
    pieces = name[: -len(SUFFIX)].split("-")
    if len(pieces) != 3 or not all(p.isdigit() for p in pieces):
        return None
    partition, first, last = (int(p) for p in pieces)
    return (partition, first, last) if first <= last else None


def tmp_partition(name: str) -> int | None:
    """The Kafka partition a temp file belongs to (None when `name` is not one of ours)."""
    if not name.startswith(TMP_PREFIX):
        return None
    head = name[len(TMP_PREFIX) :].split("-", 1)[0]
    return int(head) if head.isdigit() else None


def list_files(folder: Path, partition: int | None = None) -> list[DataFile]:
    """Data files of `folder` (of one partition if given), sorted by (partition, first, last)."""
    out = []
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return []
    for entry in entries:
        parsed = parse_file_name(entry.name)
        if parsed is not None and (partition is None or parsed[0] == partition):
            out.append(DataFile(parsed[0], parsed[1], parsed[2], Path(entry.path)))
    out.sort()
    return out


def iter_folders(root: Path, dataset: str) -> Iterator[Path]:
    """Every `symbol=…/date=…` folder of a dataset."""
    base = Path(root) / dataset
    try:
        symbols = sorted(e.path for e in os.scandir(base) if e.is_dir() and e.name.startswith("symbol="))
    except FileNotFoundError:
        return
    for sym in symbols:
        try:
            dates = sorted(e.path for e in os.scandir(sym) if e.is_dir() and e.name.startswith("date="))
        except FileNotFoundError:
            continue
        for d in dates:
            yield Path(d)


# ------------------------------------------------------------------------------ durable operations


def fsync_dir(folder: Path) -> None:
    """Make the folder's entries (a rename, a deletion) durable."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_folder(folder: Path, fsync: bool = True) -> None:
    """Create `folder` and make its creation durable (a renamed file in a lost folder is lost)."""
    if folder.is_dir():
        return
    missing = []
    probe = folder
    while not probe.exists():
        missing.append(probe)
        probe = probe.parent
    folder.mkdir(parents=True, exist_ok=True)
    if fsync:
        for created in reversed(missing):
            fsync_dir(created.parent)


@dataclass(frozen=True)
class WriteOptions:
    """How files are written (the same for the writer and compaction)."""

    compression: str = "zstd"
    compression_level: int | None = None
    row_group_rows: int = 131_072
    row_group_bytes: int = 64 * 1024 * 1024
    fsync: bool = True


def write_atomic(
    folder: Path,
    partition: int,
    parts: Sequence[Part],
    table: pa.Table,
    options: WriteOptions,
    dictionary_columns: Sequence[str] | None = None,
    before_rename: Callable[[], None] | None = None,
) -> Path:
    """Write `table` as `<partition>-<first>-<last>.parquet` in `folder`: tmp, fsync, rename, fsync dir.

    `before_rename` runs after the temp file is durable and before it becomes visible: the writer
    removes there the rows it supersedes, so that a reader (or a crash) never sees them twice.
    """
    first, last = parts[0][0], parts[-1][1]
    ensure_folder(folder, options.fsync)
    tmp = folder / tmp_name(partition, first, last)
    final = folder / file_name(partition, first, last)
    meta = dict(table.schema.metadata or {})
    meta[PARTS_KEY] = json.dumps([list(p) for p in parts]).encode()
    table = table.replace_schema_metadata(meta)
    row_bytes = max(1, table.nbytes // max(1, table.num_rows))
    group_rows = max(1024, min(options.row_group_rows, options.row_group_bytes // row_bytes))
    if dictionary_columns is None:
        dictionary_columns = default_dictionary_columns(table.schema)
    try:
        pq.write_table(
            table,
            tmp,
            compression=options.compression,
            compression_level=options.compression_level,
            row_group_size=group_rows,
            use_dictionary=list(dictionary_columns) if dictionary_columns else False,
            write_statistics=True,
        )
        if options.fsync:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        if before_rename is not None:
            before_rename()
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if options.fsync:
        fsync_dir(folder)
    return final


def default_dictionary_columns(schema: pa.Schema) -> list[str]:
    """Dictionary-encode the string columns that are not identifiers (what the writer also does)."""
    return [f.name for f in schema if pa.types.is_string(f.type) and not f.name.endswith("id")]


def read_file(path: Path) -> pa.Table:
    """A data file's rows, without the Hive columns its path implies."""
    return pq.ParquetFile(path).read()


def remove(path: Path) -> None:
    path.unlink(missing_ok=True)


# ------------------------------------------------------------------- crash recovery and supersede


def clean_tmp(folder: Path, partition: int | None = None) -> int:
    """Delete the temp files of `partition` (all partitions if None) left by a crash; count them."""
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return 0
    for entry in entries:
        owner = tmp_partition(entry.name)
        if owner is not None and (partition is None or owner == partition):
            os.unlink(entry.path)
            removed += 1
    return removed


def reconcile_folder(folder: Path, partition: int | None = None, fsync: bool = True) -> int:
    """Delete crash leftovers of `partition` (all if None) in `folder`; return how many files went.

    A leftover is a temp file, or a file whose parts are all parts of another file of the same
    partition. That second case only arises from a crash between the rename of a file built from
    other files' parts and the deletion of those: compaction (merged ⊇ sources: the sources go,
    which finishes the compaction) or a trim (original ⊇ trimmed: the trimmed copy goes, which undoes
    the trim; the replay that caused it trims again). Files that merely overlap are kept and logged:
    only a consumer reset to an offset that is not a commit point can produce them.
    """
    removed = clean_tmp(folder, partition)
    files = list_files(folder, partition)
    by_partition: dict[int, list[DataFile]] = {}
    for f in files:
        by_partition.setdefault(f.partition, []).append(f)
    for group in by_partition.values():
        removed += _drop_contained(sorted(group, key=lambda f: (f.first, -f.last)))
    if removed and fsync:
        fsync_dir(folder)
    return removed


def _drop_contained(files: list[DataFile]) -> int:
    removed = 0
    cover: DataFile | None = None
    cover_parts: set[Part] | None = None
    for f in files:
        if cover is not None and f.last <= cover.last:
            if cover_parts is None:
                cover_parts = set(cover.parts())
            if set(f.parts()) <= cover_parts:
                log.warning("removing %s: its rows are all in %s (crash leftover)", f.path, cover.path.name)
                remove(f.path)
                removed += 1
            else:
                log.warning("%s overlaps %s (consumer reset to a non-committed offset?)", f.path, cover.path)
            continue
        if cover is not None and f.first <= cover.last:
            log.warning("%s overlaps %s (consumer reset to a non-committed offset?)", f.path, cover.path)
        cover, cover_parts = f, None
    return removed


def supersede(folder: Path, partition: int, first: int, durable: int, options: WriteOptions) -> None:
    """Remove from `folder` the parts that a new file of `partition` starting at `first` replaces.

    Called by the writer before it renames a file holding offsets `first…` that a previous run may
    already have written (a crash after the rename but before the offset commit makes Kafka deliver
    them again, possibly cut into files at other offsets). Every part of this partition with
    `last >= first` and `first >= durable` (the offset from which this run has not yet made anything
    durable, i.e. data that is being replayed) is dropped: whole files are deleted, files with earlier
    parts (compacted) are rewritten with the parts that stay (always a prefix). A part that started
    before `durable` is kept and logged: only a reset to an offset that is not a commit point makes one.
    """
    for f in list_files(folder, partition):
        if f.last < first:
            continue
        parts = f.parts()
        keep = [p for p in parts if p[1] < first or p[0] < durable]
        if len(keep) == len(parts):
            if any(p[1] >= first for p in keep):
                log.warning("%s starts before the replay point %d: kept, rows may repeat", f.path, durable)
            continue
        if not keep:
            log.info("replay of offsets %d… in %s supersedes %s", first, folder, f.path.name)
            remove(f.path)
            continue
        whole = read_file(f.path)
        starts = [0]
        for p in parts:
            starts.append(starts[-1] + p[2])
        table = pa.concat_tables([whole.slice(starts[i], p[2]) for i, p in enumerate(parts) if p in keep])
        log.info(
            "replay of offsets %d… in %s trims %s to %d rows", first, folder, f.path.name, table.num_rows
        )
        write_atomic(folder, partition, keep, table, options)
        remove(f.path)
    if options.fsync:
        fsync_dir(folder)
