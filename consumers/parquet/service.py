"""The `parquet` service: any set of topics → a Hive-style Parquet dataset, exactly once.

Each decoded record goes to `ParquetWriter`; files are written to a temporary name and renamed by the
writer, and the offsets committed in the runtime's transaction are only those the writer reports as
durable (every record below them is in a renamed file). A crash or a kill therefore re-reads records
whose files were never renamed (or were renamed but not committed: the writer then replaces the files
holding those offsets, never duplicating rows). Small files are compacted every `compact_every_s`.
`kracked.book.top` is also written in the original kracked's wide layout (`<topic>.wide`).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from consumers.parquet.compact import compact
from consumers.parquet.wide import WideBook
from consumers.parquet.writer import Commit, ParquetWriter, WriterConfig
from consumers.runtime import BaseService, Inbound, Outbox, TopicPartitionKey
from kracked import metrics
from schemas.topics import Topic

log = logging.getLogger(__name__)

ROWS = metrics.counter("kracked_parquet_rows_total", "rows handed to the Parquet writer", ("topic",))
FILES_COMMITTED = metrics.counter("kracked_parquet_commits_total", "partition commits after renamed files")

DEFAULT_TOPICS = (
    Topic.TICKER,
    Topic.BOOK,
    Topic.TRADE,
    Topic.OHLC,
    Topic.INSTRUMENT,
    Topic.STATUS,
    Topic.CONTINUITY,
    Topic.BOOK_TOP,
    Topic.BARS,
    Topic.SPREAD,
)


class ParquetService(BaseService):
    name = "parquet"
    outputs: tuple[Topic, ...] = ()

    def __init__(
        self,
        root: Path,
        topics: tuple[Topic, ...] = DEFAULT_TOPICS,
        prefix: str = "",
        config: WriterConfig | None = None,
        wide_depth: int = 10,
        compact_every_s: float = 300.0,
    ) -> None:
        self.root = root
        self.inputs = topics
        self.prefix = prefix
        derived = (
            {Topic.BOOK_TOP.name_with(prefix): [WideBook(wide_depth)]} if Topic.BOOK_TOP in topics else {}
        )
        self.writer = ParquetWriter(root, config=config, topic_prefix=prefix, derived=derived)
        self.compact_every_s = compact_every_s
        self._durable: dict[TopicPartitionKey, int] = {}
        self._last_compact = time.monotonic()

    def handle(self, item: Inbound, out: Outbox) -> None:
        try:
            self.writer.add(item.topic_name, item.partition, item.offset, item.record)
        except ValueError:
            self.writer.skip(item.topic_name, item.partition, item.offset)
            raise  # the runtime dead-letters it with topic/partition/offset and the reason
        ROWS.labels(item.topic.value).inc()

    def flush(self, out: Outbox, final: bool) -> None:
        commits = self.writer.flush_all() if final else self.writer.flush_ready(time.monotonic())
        self._record(commits)
        for rejected in self.writer.drain_rejected():
            out.dead_letter(
                "process",
                f"parquet: {rejected.reason}",
                repr(rejected.values).encode(),
                None,
            )
        if self.compact_every_s > 0 and time.monotonic() - self._last_compact >= self.compact_every_s:
            self._compact()

    def _record(self, commits: list[Commit]) -> None:
        for commit in commits:
            self._durable[(commit.topic, commit.partition)] = commit.offset
            FILES_COMMITTED.inc()

    def _compact(self) -> None:
        self._last_compact = time.monotonic()
        partitions = {p for (_t, p) in self._durable}
        for topic in self.inputs:
            datasets = [topic.name_with(self.prefix)]
            if topic is Topic.BOOK_TOP:
                datasets.append(topic.name_with(self.prefix) + WideBook.suffix)
            for dataset in datasets:
                stats = compact(self.root, dataset, partitions=partitions or None, min_age_s=1.0)
                if stats.folders:
                    log.debug("compacted %s: %s", dataset, stats)

    def checkpoint(self, positions: dict[TopicPartitionKey, int]) -> dict[TopicPartitionKey, tuple[int, str]]:
        # only offsets whose records are all in renamed files; never the read position
        return {tp: (self._durable[tp], "") for tp in positions if tp in self._durable}

    def revoked(self, partitions: list[TopicPartitionKey]) -> None:
        for topic, partition in partitions:
            self.writer.discard(topic, partition)
            self._durable.pop((topic, partition), None)
