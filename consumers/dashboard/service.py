"""Kafka side of `kracked dashboard`: one background thread reads the topics into `DashboardState`.

The dashboard is a view, not a processor: it assigns partitions itself (no group rebalance, no
commits) under a fresh group id, starts each partition a time window back (`window_minutes`, with at
least the last `tail_records` records so a quiet symbol still shows its latest state and age) and
`kracked.orders` from the beginning (compacted, and the P&L needs every fill). New topics and
partitions are picked up every few seconds, so the page can be opened before the services run.
Records are decoded with `schemas.serde.Serde` outside the lock and folded in by batch under it.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, TopicPartition

from consumers.dashboard.domain import DashboardState
from consumers.dashboard.settings import DashboardSettings
from kracked import metrics
from kracked.kafka import consumer_config
from kracked.settings import KafkaSettings
from schemas.serde import Serde, SerdeError
from schemas.topics import Topic, find_topic

log = logging.getLogger(__name__)

RECORDS = metrics.counter("kracked_dashboard_records_total", "records read by the dashboard", ("topic",))
UNDECODABLE = metrics.counter(
    "kracked_dashboard_undecodable_total", "records the dashboard could not decode or show", ("topic",)
)
LAG = metrics.gauge("kracked_dashboard_lag", "records behind the end of the topic", ("topic",))

VIEW_TOPICS: tuple[Topic, ...] = (Topic.BOOK_TOP, Topic.BARS, Topic.SPREAD, Topic.ORDERS, Topic.CONTINUITY)
FROM_BEGINNING: frozenset[Topic] = frozenset({Topic.ORDERS})


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class TopicReader:
    """Reads the dashboard's topics in a daemon thread until `stop()`; never commits anything."""

    def __init__(
        self,
        kafka: KafkaSettings,
        settings: DashboardSettings,
        state: DashboardState,
        lock: threading.Lock,
        group_id: str | None = None,
    ) -> None:
        self.kafka = kafka
        self.settings = settings
        self.state = state
        self.lock = lock
        self.topics: tuple[Topic, ...] = VIEW_TOPICS + ((Topic.TRADE,) if settings.trades else ())
        self.group_id = group_id or f"kracked-dashboard-{uuid.uuid4().hex[:8]}"
        self.assigned: dict[tuple[str, int], Topic] = {}
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dashboard-reader", daemon=True)
        self._warned: set[str] = set()
        self._state: tuple[str, str] | None = None

    def start(self) -> TopicReader:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def alive(self) -> bool:
        return self._thread.is_alive()

    # ---- thread ------------------------------------------------------------------------------
    def _run(self) -> None:
        serde = Serde(self.kafka.schema_registry_url, self.kafka.topic_prefix)
        consumer = Consumer(consumer_config(self.kafka, self.group_id))
        log.info(
            "dashboard reading %s (prefix %r, window %d min)",
            ", ".join(t.value for t in self.topics),
            self.kafka.topic_prefix,
            self.settings.window_minutes,
        )
        next_meta = next_lag = 0.0
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                if now >= next_meta:
                    self._assign_new(consumer)
                    next_meta = now + self.settings.metadata_interval_s
                if self.assigned:
                    self._handle(consumer.consume(500, 0.1), serde)
                else:
                    self._stop.wait(0.1)
                if now >= next_lag and self.assigned:
                    self._update_lag(consumer)
                    next_lag = now + self.settings.lag_interval_s
        except BaseException as exc:  # the page must say the feed stopped, not freeze silently
            self.error = exc
            log.exception("dashboard reader stopped")
            with self.lock:
                self.state.set_consumer("stopped", f"{type(exc).__name__}: {exc}")
        finally:
            consumer.close()

    def _set_state(self, state: str, detail: str = "") -> None:
        if (state, detail) == self._state:
            return
        log.info("dashboard consumer %s%s", state, f": {detail}" if detail else "")
        self._state = (state, detail)
        with self.lock:
            self.state.set_consumer(state, detail)

    def _assign_new(self, consumer: Consumer) -> None:
        """Assign partitions of our topics not assigned yet (topics may be created after we start)."""
        try:
            meta = consumer.list_topics(timeout=5)
        except KafkaException as exc:
            self._set_state("down", f"broker unreachable: {exc.args[0].str()}")
            return
        new: list[tuple[Topic, TopicPartition]] = []
        for topic in self.topics:
            name = topic.name_with(self.kafka.topic_prefix)
            info = meta.topics.get(name)
            if info is None or info.error is not None:
                continue
            for p in sorted(info.partitions):
                if (name, p) not in self.assigned:
                    new.append((topic, TopicPartition(name, p)))
        if not new:
            if not self.assigned:
                self._set_state("waiting", "none of the topics exists yet")
            return
        starts = self._start_offsets(consumer, new)
        consumer.incremental_assign(starts)
        for (topic, tp), start in zip(new, starts, strict=True):
            self.assigned[(tp.topic, tp.partition)] = topic
            log.info("dashboard reads %s[%d] from offset %d", tp.topic, tp.partition, start.offset)
        self._set_state("up")

    def _start_offsets(
        self, consumer: Consumer, new: Sequence[tuple[Topic, TopicPartition]]
    ) -> list[TopicPartition]:
        window_ms = self.settings.window_minutes * 60_000
        since = now_ms() - window_ms
        timed = [tp for topic, tp in new if window_ms and topic not in FROM_BEGINNING]
        found: dict[tuple[str, int], int] = {}
        if timed:
            query = [TopicPartition(tp.topic, tp.partition, since) for tp in timed]
            for tp in consumer.offsets_for_times(query, timeout=10):
                found[(tp.topic, tp.partition)] = tp.offset
        out = []
        for _topic, tp in new:
            key = (tp.topic, tp.partition)
            if key not in found:
                out.append(TopicPartition(tp.topic, tp.partition, OFFSET_BEGINNING))
                continue
            low, high = consumer.get_watermark_offsets(tp, timeout=10)
            offset = found[key] if found[key] >= 0 else high  # -1: nothing that recent
            # a quiet symbol's latest book/bar is older than the window: still show it, with its age
            offset = max(low, min(offset, high - self.settings.tail_records))
            out.append(TopicPartition(tp.topic, tp.partition, offset))
        return out

    def _handle(self, messages: list[Message], serde: Serde) -> None:
        decoded = []
        bad: Counter[str] = Counter()
        for msg in messages:
            err = msg.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    self._set_state("error", err.str())
                continue
            topic = self.assigned.get((str(msg.topic()), int(msg.partition() or 0)))
            if topic is None:
                topic = find_topic(str(msg.topic()), self.kafka.topic_prefix)
            try:
                decoded.append((topic, serde.decode(topic, msg.value())))
            except SerdeError as exc:
                bad[topic.value] += 1
                self._warn_once(
                    topic.value,
                    f"undecodable record at {msg.topic()}[{msg.partition()}]@{msg.offset()}: {exc}",
                )
        if not decoded and not bad:
            return
        with self.lock:
            for topic, record in decoded:
                try:
                    self.state.apply(topic, record)
                except (KeyError, TypeError, ValueError) as exc:  # a record the view cannot show
                    bad[topic.value] += 1
                    self._warn_once(topic.value, f"record the dashboard cannot show: {exc!r}")
            self.state.count_records(len(decoded), sum(bad.values()))
        for topic, _record in decoded:
            RECORDS.labels(topic.value).inc()
        for name, n in bad.items():
            UNDECODABLE.labels(name).inc(n)
        if decoded and self._state != ("up", ""):
            self._set_state("up")

    def _warn_once(self, topic: str, message: str) -> None:
        if topic not in self._warned:
            self._warned.add(topic)
            log.warning("%s: %s (further ones are only counted)", topic, message)

    def _update_lag(self, consumer: Consumer) -> None:
        tps = [TopicPartition(name, p) for name, p in self.assigned]
        try:
            positions = consumer.position(tps)
        except KafkaException:
            return
        lag: Counter[str] = Counter()
        for tp in positions:
            topic = self.assigned[(tp.topic, tp.partition)]
            # cached: the high watermark of the last fetch response, no extra broker request
            _low, high = consumer.get_watermark_offsets(tp, cached=True)
            if tp.offset >= 0 and high >= 0:
                lag[topic.value] += max(0, high - tp.offset)
            else:
                lag[topic.value] += 0
        for name, value in lag.items():
            LAG.labels(name).set(value)
        with self.lock:
            self.state.set_lag(dict(lag))
