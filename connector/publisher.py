"""Records → Kafka: Avro encoding, keyed produce, back-pressure, delivery failures, dead letters.

* Encoding: one compiled writer per topic (`connector.avro_writer`), prefixed with the Confluent
  header of the schema id registered at start-up (`prepare`), so the hot path never calls the
  registry.
* Produce: `producer.produce(topic, value, key)` with no per-message callback. The producer is
  configured with `delivery.report.only.error`, so successful deliveries cost no Python call; the
  one producer-wide `on_delivery` only sees failures. A failed delivery is counted, logged (at most
  once per second) and produced again; a non-retriable one (e.g. a record too large for the broker)
  becomes a dead letter instead, so nothing is dropped silently.
* Back-pressure: the producer's local queue is bounded (`kracked.kafka.producer_config`); when it is
  full `produce` raises BufferError. The record is then kept in a small ordered backlog (at most the
  records of the frames being handled when the queue filled), `blocked` turns true, the readers
  stop reading their sockets (`wait_writable`) and one drain task polls the producer until the backlog
  is written. Memory stays bounded by the producer queue plus that backlog.
* Counting: records per topic are counted in plain ints (read by the metrics task), not in
  Prometheus objects, to keep the hot path lean.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import struct
import time
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from connector.mapping import Out, continuity_record, deadletter_record
from schemas.avro_writer import AvroWriteError, Writer, compile_writer
from schemas.serde import MAGIC, Serde, parsed_schema
from schemas.topics import Topic

log = logging.getLogger(__name__)

_HEADER = struct.Struct(">bI")

# what the connector adds to kracked.kafka.producer_config
PRODUCER_OVERRIDES: dict[str, Any] = {
    "delivery.report.only.error": True,
    "statistics.interval.ms": 5000,
}

MAX_DEADLETTER_RAW = 512 * 1024  # a dead letter must itself fit in a Kafka message


class Publisher:
    """Encode and produce records of the connector's topics (see module docstring)."""

    def __init__(self, producer: Producer, serde: Serde, source: str = "connector") -> None:
        self.producer = producer
        self.serde = serde
        self.source = source
        self.prefix = serde.prefix
        self.writers: dict[Topic, Writer] = {}
        self.headers: dict[Topic, bytes] = {}  # Confluent wire-format header per topic
        self.names: dict[Topic, str] = {t: t.name_with(self.prefix) for t in Topic}
        self.blocked = False
        self._backlog: deque[tuple[Topic, str, bytes]] = deque()
        self._drained = asyncio.Event()
        self._drained.set()
        self._drainer: asyncio.Task[None] | None = None
        self.produced: dict[Topic, int] = dict.fromkeys(Topic, 0)
        self.delivery_failures = 0
        self.dead_letters: dict[str, int] = {}
        self.blocked_seconds = 0.0
        self._blocked_at = 0.0
        self.fatal: str | None = None
        self.latency: dict[str, float] = {}  # from librdkafka statistics: p50/p99 seconds
        self._last_failure_log = 0.0
        self.brokers_down = False
        self._down_logged = 0.0

    # ----------------------------------------------------------------------------------------- setup

    def prepare(self, topics: Iterable[Topic]) -> None:
        """Register the schemas and compile the writers (blocking: call before reading any socket)."""
        for topic in topics:
            schema_id = self.serde.codec(topic).schema_id()
            header = self.headers[topic] = _HEADER.pack(MAGIC, schema_id)
            self.writers[topic] = compile_writer(parsed_schema(topic), header)

    # ----------------------------------------------------------------------------------------- callbacks

    def on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        """Producer-wide delivery callback; with `delivery.report.only.error` it only sees failures."""
        if err is None:
            return
        self.delivery_failures += 1
        now = time.monotonic()
        if now - self._last_failure_log >= 1.0:
            self._last_failure_log = now
            log.error(
                "delivery to %s failed: %s (%d failures so far; %s)",
                msg.topic(),
                err.str(),
                self.delivery_failures,
                "retrying" if err.retriable() else "dead-lettered",
            )
        topic_name = msg.topic() or ""
        topic = self._topic_of(topic_name)
        key = msg.key()
        key_text = key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key or "")
        value = msg.value() or b""
        if err.retriable() or topic is None:
            if topic is not None:
                self._produce(topic, key_text, value)
            return
        if topic is Topic.DEADLETTER:
            log.error("a dead letter could not be delivered either (%s); it is lost", err.str())
            return
        self.dead_letter("produce", f"{err.name()}: {err.str()}", value, None)

    def on_error(self, err: KafkaError) -> None:
        """librdkafka errors: mostly transient (broker down) and retried internally; fatal stops us."""
        if err.fatal():
            self.fatal = err.str()
            log.critical("Kafka producer fatal error: %s", err.str())
        elif err.code() == KafkaError._ALL_BROKERS_DOWN:
            # librdkafka repeats this at every reconnect attempt: one line when it starts, then one a minute
            now = time.monotonic()
            if not self.brokers_down or now - self._down_logged >= 60.0:
                log.warning("Kafka: all brokers down; records wait in the producer queue (bounded)")
                self._down_logged = now
            self.brokers_down = True
        else:
            log.debug("Kafka: %s", err.str())

    def on_stats(self, stats_json: str) -> None:
        """Produce latency from librdkafka statistics: queue time + broker round trip, p50/p99."""
        try:
            stats = json.loads(stats_json)
        except ValueError:
            return
        p50 = p99 = 0.0
        brokers = stats.get("brokers", {}).values()
        if self.brokers_down and any(b.get("state") == "UP" and b.get("nodeid", -1) >= 0 for b in brokers):
            self.brokers_down = False
            log.info("Kafka: brokers reachable again; %d records waiting for delivery", self.in_flight())
        for broker in brokers:
            if broker.get("nodeid", -1) < 0:
                continue
            internal, rtt = broker.get("int_latency", {}), broker.get("rtt", {})
            if not rtt.get("cnt"):
                continue
            p50 = max(p50, (internal.get("p50", 0) + rtt.get("p50", 0)) / 1e6)
            p99 = max(p99, (internal.get("p99", 0) + rtt.get("p99", 0)) / 1e6)
        self.latency = {"0.5": p50, "0.99": p99}

    def _topic_of(self, name: str) -> Topic | None:
        for topic, full in self.names.items():
            if full == name:
                return topic
        return None

    # ----------------------------------------------------------------------------------------- produce

    def encode(self, topic: Topic, record: Mapping[str, Any]) -> bytes:
        """Confluent-framed Avro of `record` (AvroWriteError when it does not fit the schema)."""
        return self.writers[topic](record)

    def produce(self, topic: Topic, key: str, value: bytes) -> None:
        """Produce one encoded value (never raises BufferError: the backlog takes it and blocks)."""
        self.produced[topic] += 1
        if self._backlog:
            self._backlog.append((topic, key, value))
            return
        try:
            self.producer.produce(self.names[topic], value, key)
        except BufferError:
            self._backlog.append((topic, key, value))
            self._block()

    def _produce(self, topic: Topic, key: str, value: bytes) -> None:
        """Re-produce after a failed delivery (not counted again as a record out)."""
        self.produced[topic] -= 1
        self.produce(topic, key, value)

    def publish(self, out: Out) -> None:
        self.produce(out.topic, out.key, self.encode(out.topic, out.record))

    def publish_all(self, outs: Iterable[Out]) -> None:
        """Encode every record first, then produce: a frame is published whole or not at all."""
        encoded = [(o.topic, o.key, self.encode(o.topic, o.record)) for o in outs]
        for topic, key, value in encoded:
            self.produce(topic, key, value)

    def continuity(self, event: str, detail: str, **fields: Any) -> None:
        """Publish a `kracked.continuity` event (never fails: a bad one is logged)."""
        ts = time.time_ns() // 1000
        out = continuity_record(event, self.source, ts, detail, **fields)
        try:
            self.publish(out)
        except AvroWriteError as exc:  # pragma: no cover - our own record shape
            log.error("cannot encode continuity event %s: %s", event, exc)

    def dead_letter(self, stage: str, error: str, raw: bytes | str, channel: str | None) -> None:
        """Publish what could not be parsed/mapped/serialized/produced, with the reason."""
        data = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else bytes(raw)
        if len(data) > MAX_DEADLETTER_RAW:
            error = f"{error} (raw truncated from {len(data)} bytes)"
            data = data[:MAX_DEADLETTER_RAW]
        self.dead_letters[stage] = self.dead_letters.get(stage, 0) + 1
        out = deadletter_record(self.source, stage, error[:4000], data, time.time_ns() // 1000, channel)
        try:
            self.publish(out)
        except AvroWriteError as exc:  # pragma: no cover - our own record shape
            log.error("cannot encode a dead letter: %s", exc)

    # ----------------------------------------------------------------------------------------- back-pressure

    def _block(self) -> None:
        if not self.blocked:
            self.blocked = True
            self._blocked_at = time.monotonic()
            self._drained.clear()
            log.warning("Kafka producer queue full: pausing the WebSocket reads (back-pressure)")

    async def wait_writable(self) -> None:
        """Return once the backlog is in the producer queue (one drain task serves every reader)."""
        if not self.blocked:
            return
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.get_running_loop().create_task(self._drain())
        await self._drained.wait()

    async def _drain(self) -> None:
        backlog = self._backlog
        while backlog:
            self.producer.poll(0)
            topic, key, value = backlog[0]
            try:
                self.producer.produce(self.names[topic], value, key)
            except BufferError:
                await asyncio.sleep(0.02)
                continue
            backlog.popleft()
        self.blocked = False
        self.blocked_seconds += time.monotonic() - self._blocked_at
        self._drained.set()
        log.info("Kafka producer queue has room again: reading resumes")

    def poll(self) -> None:
        self.producer.poll(0)

    def in_flight(self) -> int:
        return len(self.producer) + len(self._backlog)

    def flush(self, timeout: float) -> int:
        """Write the backlog and wait for every delivery; returns how many are still undelivered."""
        deadline = time.monotonic() + timeout
        while self._backlog and time.monotonic() < deadline:
            topic, key, value = self._backlog[0]
            try:
                self.producer.produce(self.names[topic], value, key)
                self._backlog.popleft()
            except BufferError:
                self.producer.poll(0.05)
        remaining = self.producer.flush(max(0.0, deadline - time.monotonic()))
        return int(remaining) + len(self._backlog)

    async def close(self) -> None:
        if self._drainer is not None:
            self._drainer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._drainer
