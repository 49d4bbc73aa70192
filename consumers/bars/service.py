"""The `bars` service: `kraken.trade` → `consumers.bars.domain.BarBuilder` → `kracked.bars`.

Watermark, restart and output times follow `consumers.windowed` (event time, wall clock only when
caught up; replay of the open bars' trades after a restart, emitted bars skipped).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from consumers.bars.domain import KRAKEN_OHLC_MINUTES, BarBuilder
from consumers.runtime import Inbound
from consumers.windowed import Window, WindowedService
from kracked import metrics
from kracked.settings import KafkaSettings
from schemas.topics import Topic

log = logging.getLogger(__name__)

LATE = metrics.counter("kracked_bars_late_trades_total", "trades later than their bar's close + grace")
DEFAULT_INTERVALS = tuple(m * 60 for m in KRAKEN_OHLC_MINUTES[:7])  # 1m … 1d


class BarsService(WindowedService):
    name = "bars"
    inputs: tuple[Topic, ...] = (Topic.TRADE,)
    output = Topic.BARS

    def __init__(
        self,
        intervals_s: tuple[int, ...] = DEFAULT_INTERVALS,
        grace_ms: int = 2000,
        idle_delay_ms: int = 2000,
        settings: KafkaSettings | None = None,
    ) -> None:
        super().__init__(intervals_s, grace_ms, idle_delay_ms, settings)

    def new_builder(self, last_emitted: dict[tuple[str, int], int]) -> Any:
        return BarBuilder(self.intervals_s, self.grace_us, last_emitted=last_emitted)

    def add(self, item: Inbound) -> tuple[Iterable[Window], int]:
        result = self.builder.add_trade(item.record, item.partition, item.offset)
        if result.late:
            LATE.inc(len(result.late))
        return result.closed, item.record["ts_event"]
