"""What the `bars` and `spread` services share: event-time windows on top of the consumer runtime.

Watermark (how windows of quiet symbols still close on time): event time first — every record moves
the watermark of all symbols to the newest event time seen (checked only when it crosses a possible
window end, the intervals' gcd) — and, when the service is caught up (every assigned partition read
to its end), the wall clock minus `idle_delay`, so a window closes at most `grace + idle_delay` after
its end even if no record arrives anywhere. While records are flowing (catch-up, restart replay,
backtests) only event time moves it, so the output depends on the input alone.

Restart (never a window twice, never one lost): outputs and offsets are committed in one transaction,
and the committed offset of each input partition is the first offset any still-open window needs
(`builder.replay_offsets()`), so a restart replays exactly the records of the open windows. Windows
already emitted are recognised from the tail of the output topic (read from the Kafka timestamp of the
first replayed record, minus a margin for clock skew) and passed to the builder as `last_emitted`:
their records are skipped, not re-emitted. Output `ts` is the window's end (input-derived, so replays
give identical records).
"""

from __future__ import annotations

import argparse
import logging
import math
import time
from collections.abc import Iterable
from typing import Any, Protocol

from confluent_kafka import Consumer, TopicPartition

from consumers.runtime import BaseService, Inbound, Outbox, TopicPartitionKey
from kracked.errors import ConfigError
from kracked.kafka import consumer_config
from kracked.settings import KafkaSettings
from schemas.serde import Serde
from schemas.topics import Topic

log = logging.getLogger(__name__)


def add_window_arguments(parser: argparse.ArgumentParser, default_intervals: tuple[int, ...]) -> None:
    """The flags every windowed service shares (intervals, grace, idle delay)."""
    default = ",".join(f"{s // 60}m" if s % 60 == 0 else f"{s}s" for s in default_intervals)
    parser.add_argument(
        "--intervals", default=default, help=f"intervals, e.g. 1s,1m,1h,1d (default {default})"
    )
    parser.add_argument(
        "--grace-ms", type=int, default=2000, help="how long after its end a window accepts late records"
    )
    parser.add_argument(
        "--idle-delay-ms", type=int, default=2000, help="wall-clock lag used to close windows when caught up"
    )


def window_arguments(args: argparse.Namespace) -> tuple[tuple[int, ...], int, int]:
    """(intervals in seconds, grace ms, idle delay ms) from the shared flags; ConfigError when invalid."""
    from consumers.bars.domain import parse_interval

    try:
        intervals = tuple(parse_interval(v) for v in args.intervals.split(",") if v.strip())
    except ValueError as exc:
        raise ConfigError(f"--intervals: {exc}") from None
    if not intervals or args.grace_ms < 0 or args.idle_delay_ms < 0:
        raise ConfigError(
            "--intervals must name at least one interval; --grace-ms/--idle-delay-ms must be ≥ 0"
        )
    return intervals, args.grace_ms, args.idle_delay_ms


RESTORE_MARGIN_MS = 10 * 60 * 1000


class Window(Protocol):
    symbol: str
    interval_s: int
    end: int

    def as_record(self, ts: int) -> dict[str, Any]: ...


class Builder(Protocol):
    def advance(self, watermark_us: int) -> Iterable[Window]: ...

    def replay_offsets(self) -> dict[int, int]: ...


class WindowedService(BaseService):
    """A service whose output is per (symbol, interval) windows closed by an event-time watermark."""

    output: Topic

    def __init__(
        self, intervals_s: tuple[int, ...], grace_ms: int, idle_delay_ms: int, settings: KafkaSettings | None
    ) -> None:
        self.intervals_s = intervals_s
        self.grace_us = grace_ms * 1000
        self.idle_delay_us = idle_delay_ms * 1000
        self.settings = settings  # needed only to restore after a restart (reads the output topic)
        self.outputs = (self.output,)
        # every window end is a multiple of the intervals' gcd: the watermark only needs moving when an
        # event time crosses the next such multiple (+ grace), not at every record
        self._step_us = math.gcd(*intervals_s) * 1_000_000
        self._next_close = -(2**63)
        self.builder = self.new_builder({})

    # ---- for subclasses ----------------------------------------------------------------------
    def new_builder(self, last_emitted: dict[tuple[str, int], int]) -> Any:
        raise NotImplementedError

    def add(self, item: Inbound) -> tuple[Iterable[Window], int]:
        """Feed one record to the builder; returns the windows it closed and its event time."""
        raise NotImplementedError

    # ---- records -----------------------------------------------------------------------------
    def handle(self, item: Inbound, out: Outbox) -> None:
        closed, ts = self.add(item)
        self._emit(closed, out)
        if ts >= self._next_close:
            self._emit(self.builder.advance(ts), out)
            self._next_close = ((ts - self.grace_us) // self._step_us + 1) * self._step_us + self.grace_us

    def tick(self, now: int, out: Outbox, caught_up: bool) -> None:
        if caught_up:
            # every input read: let the wall clock close the windows of quiet symbols
            self._emit(self.builder.advance(now - self.idle_delay_us), out)

    def _emit(self, windows: Iterable[Window], out: Outbox) -> None:
        for window in windows:
            out.emit(self.output, window.symbol, window.as_record(window.end))

    # ---- commits and restart -----------------------------------------------------------------
    def checkpoint(self, positions: dict[TopicPartitionKey, int]) -> dict[TopicPartitionKey, tuple[int, str]]:
        replay = self.builder.replay_offsets()
        return {
            (topic, p): (min(offset, replay.get(p, offset)), "") for (topic, p), offset in positions.items()
        }

    def restore(self, committed: dict[TopicPartitionKey, tuple[int, str]]) -> None:
        if self.settings is None or not committed:
            return
        last = emitted_windows(self.settings, self.output, committed)
        self.builder = self.new_builder(last)
        self._next_close = -(2**63)
        log.info("%s: restored the last emitted window of %d symbol/interval pairs", self.name, len(last))


def emitted_windows(
    settings: KafkaSettings, output: Topic, committed: dict[TopicPartitionKey, tuple[int, str]]
) -> dict[tuple[str, int], int]:
    """(symbol, interval_s) → end of the last window in `output` that records from `committed` on may touch."""
    consumer = Consumer(consumer_config(settings, "kracked-window-restore"))
    try:
        # Kafka time of the first record to be replayed: windows that contain it were emitted later
        since_ms = int(time.time() * 1000)
        for (topic, partition), (offset, _meta) in committed.items():
            consumer.assign([TopicPartition(topic, partition, offset)])
            for msg in consumer.consume(1, 5.0):
                if msg.error() is None:
                    since_ms = min(since_ms, msg.timestamp()[1])
        name = output.name_with(settings.topic_prefix)
        meta = consumer.list_topics(name, timeout=10).topics.get(name)
        if meta is None or not meta.partitions:
            return {}
        starts = consumer.offsets_for_times(
            [TopicPartition(name, p, max(0, since_ms - RESTORE_MARGIN_MS)) for p in meta.partitions],
            timeout=10,
        )
        serde = Serde(settings.schema_registry_url, settings.topic_prefix)
        last: dict[tuple[str, int], int] = {}
        for tp in starts:
            _low, high = consumer.get_watermark_offsets(TopicPartition(name, tp.partition), timeout=10)
            start = tp.offset if tp.offset >= 0 else high
            if start >= high:
                continue
            consumer.assign([TopicPartition(name, tp.partition, start)])
            done = False
            while not done:
                batch = consumer.consume(1000, 2.0)
                if not batch:
                    break
                for msg in batch:
                    if msg.error() is None:
                        window = serde.decode(output, msg.value())
                        key = (window["symbol"], window["interval_s"])
                        last[key] = max(last.get(key, window["end"]), window["end"])
                    done = (msg.offset() or 0) + 1 >= high
        return last
    finally:
        consumer.close()
