"""The `bars` service: Kafka in/out around `consumers.bars.domain.BarBuilder`.

Watermark (how bars of quiet symbols still close on time): event time first — every trade moves the
watermark of all symbols to the newest `ts_event` seen (`advance`) — and, when the service is caught up
(a poll returned nothing), the wall clock minus `idle_delay` (default 2 s, the usual connector → Kafka
latency), so a bar closes at most `grace + idle_delay` after its end even if no trade arrives anywhere.
While records are flowing (catch-up, restart replay, backtests) only event time moves it, so the
output depends on the input alone.

Restart (never a bar twice, never one lost): outputs and offsets are committed in one transaction, and
the committed offset of each trade partition is the first offset any still-open bar needs
(`BarBuilder.replay_offsets`), so a restart replays exactly the trades of the open bars. Bars already
emitted are recognised from the tail of `kracked.bars` (read on assignment from the Kafka timestamp of
the first replayed trade, minus a margin for clock skew): their trades are skipped, not re-emitted.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from consumers.bars.domain import KRAKEN_OHLC_MINUTES, Bar, BarBuilder
from consumers.runtime import BaseService, Inbound, Outbox, TopicPartitionKey
from kracked import metrics
from kracked.kafka import consumer_config
from kracked.settings import KafkaSettings
from schemas.serde import Serde
from schemas.topics import Topic

log = logging.getLogger(__name__)

BARS = metrics.counter("kracked_bars_emitted_total", "bars emitted", ("interval_s",))
LATE = metrics.counter("kracked_bars_late_trades_total", "trades later than their bar's close + grace")
DEFAULT_INTERVALS = tuple(m * 60 for m in KRAKEN_OHLC_MINUTES[:7])  # 1m … 1d
RESTORE_MARGIN_MS = 10 * 60 * 1000


class BarsService(BaseService):
    name = "bars"
    inputs = (Topic.TRADE,)
    outputs = (Topic.BARS,)

    def __init__(
        self,
        intervals_s: tuple[int, ...] = DEFAULT_INTERVALS,
        grace_ms: int = 2000,
        idle_delay_ms: int = 2000,
        settings: KafkaSettings | None = None,
    ) -> None:
        self.intervals_s = intervals_s
        self.grace_us = grace_ms * 1000
        self.idle_delay_us = idle_delay_ms * 1000
        self.settings = settings  # needed only to restore after a restart (reads kracked.bars)
        self.builder = BarBuilder(intervals_s, self.grace_us)
        # every bar end is a multiple of the intervals' gcd: the watermark only needs moving when an
        # event time crosses the next such multiple (+ grace), not at every trade
        self._step_us = math.gcd(*intervals_s) * 1_000_000
        self._next_close = -(2**63)

    # ---- records -----------------------------------------------------------------------------
    def handle(self, item: Inbound, out: Outbox) -> None:
        result = self.builder.add_trade(item.record, item.partition, item.offset)
        if result.late:
            LATE.inc(len(result.late))
            log.debug(
                "late trade %s of %s for intervals %s",
                item.record["trade_id"],
                item.record["symbol"],
                result.late,
            )
        self._emit(result.closed, out)
        ts = item.record["ts_event"]
        if ts >= self._next_close:
            self._emit(self.builder.advance(ts), out)
            self._next_close = ((ts - self.grace_us) // self._step_us + 1) * self._step_us + self.grace_us

    def tick(self, now: int, out: Outbox, caught_up: bool) -> None:
        if caught_up:
            # every input read: let the wall clock close the bars of quiet symbols
            self._emit(self.builder.advance(now - self.idle_delay_us), out)

    def _emit(self, bars: list[Bar], out: Outbox) -> None:
        for bar in bars:
            # ts = the bar's end: derived from the input only, so replays give identical records
            out.emit(Topic.BARS, bar.symbol, bar.as_record(bar.end))
            BARS.labels(str(bar.interval_s)).inc()

    # ---- commits and restart -----------------------------------------------------------------
    def checkpoint(self, positions: dict[TopicPartitionKey, int]) -> dict[TopicPartitionKey, tuple[int, str]]:
        replay = self.builder.replay_offsets()
        return {
            (topic, p): (min(offset, replay.get(p, offset)), "") for (topic, p), offset in positions.items()
        }

    def restore(self, committed: dict[TopicPartitionKey, tuple[int, str]]) -> None:
        if self.settings is None or not committed:
            return
        last = self._emitted_bars(committed)
        self.builder = BarBuilder(self.intervals_s, self.grace_us, last_emitted=last)
        self._next_close = -(2**63)
        log.info("bars: restored the last emitted bar of %d symbol/interval pairs", len(last))

    def _emitted_bars(
        self, committed: dict[TopicPartitionKey, tuple[int, str]]
    ) -> dict[tuple[str, int], int]:
        assert self.settings is not None
        settings = self.settings
        consumer = Consumer(consumer_config(settings, "kracked-bars-restore"))
        try:
            # Kafka time of the first trade to be replayed: bars that contain it were emitted later
            since_ms = int(time.time() * 1000)
            for (topic, partition), (offset, _meta) in committed.items():
                consumer.assign([TopicPartition(topic, partition, offset)])
                for msg in consumer.consume(1, 10.0):
                    if msg.error() is None:
                        since_ms = min(since_ms, msg.timestamp()[1])
            bars_topic = Topic.BARS.name_with(settings.topic_prefix)
            meta = consumer.list_topics(bars_topic, timeout=10).topics.get(bars_topic)
            if meta is None or not meta.partitions:
                return {}
            starts = consumer.offsets_for_times(
                [TopicPartition(bars_topic, p, since_ms - RESTORE_MARGIN_MS) for p in meta.partitions],
                timeout=10,
            )
            serde = Serde(settings.schema_registry_url, settings.topic_prefix)
            last: dict[tuple[str, int], int] = {}
            for tp in starts:
                _low, high = consumer.get_watermark_offsets(
                    TopicPartition(bars_topic, tp.partition), timeout=10
                )
                start = tp.offset if tp.offset >= 0 else high
                if start >= high:
                    continue
                consumer.assign([TopicPartition(bars_topic, tp.partition, start)])
                done = False
                while not done:
                    batch = consumer.consume(1000, 2.0)
                    if not batch:
                        break
                    for msg in batch:
                        if msg.error() is None:
                            bar: dict[str, Any] = serde.decode(Topic.BARS, msg.value())
                            key = (bar["symbol"], bar["interval_s"])
                            last[key] = max(last.get(key, bar["end"]), bar["end"])
                        done = (msg.offset() or 0) + 1 >= high
            return last
        finally:
            consumer.close()
