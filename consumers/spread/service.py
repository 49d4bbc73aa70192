"""The `spread` service: `kraken.ticker` (bbo) or `kracked.book.top` → `SpreadBuilder` → `kracked.spread`.

Watermark, restart and output times follow `consumers.windowed`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from consumers.runtime import Inbound
from consumers.spread.domain import SpreadBuilder
from consumers.windowed import Window, WindowedService
from kracked.settings import KafkaSettings
from schemas.topics import Topic

DEFAULT_INTERVALS = (60, 300, 3600)
SOURCES = {"ticker": Topic.TICKER, "book.top": Topic.BOOK_TOP}


class SpreadService(WindowedService):
    name = "spread"
    output = Topic.SPREAD

    def __init__(
        self,
        source: str = "book.top",
        intervals_s: tuple[int, ...] = DEFAULT_INTERVALS,
        grace_ms: int = 2000,
        idle_delay_ms: int = 2000,
        settings: KafkaSettings | None = None,
    ) -> None:
        self.source = source
        self.inputs = (SOURCES[source],)
        super().__init__(intervals_s, grace_ms, idle_delay_ms, settings)

    def new_builder(self, last_emitted: dict[tuple[str, int], int]) -> Any:
        return SpreadBuilder(self.source, self.intervals_s, self.grace_us, last_emitted=last_emitted)

    def add(self, item: Inbound) -> tuple[Iterable[Window], int]:
        record = item.record
        if self.source == "ticker":
            result = self.builder.add_ticker(record, item.partition, item.offset)
            ts = record.get("ts_event") or record["ts_recv"]
        else:
            result = self.builder.add_book_top(record, item.partition, item.offset)
            ts = record.get("ts_event") or record.get("ts_recv") or record["ts"]
        return result.closed, ts
