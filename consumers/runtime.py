"""The one consumer runtime every service runs on: poll → decode → handle → emit → commit.

Outputs and input offsets are committed in one Kafka transaction (exactly-once for consume →
process → produce), so a killed or restarted service never emits the same result twice and never
skips an input. Services with side effects outside Kafka (Parquet files) make them durable in
`flush()` before the transaction that commits the offsets. A service may hold its committed offset
back (e.g. bars keep it at the first trade of the oldest open bar) and attach a small metadata
string to it (e.g. the watermark), which `restore()` receives on assignment.

Failure rules (DESIGN §4): an undecodable or unprocessable record goes to `kracked.deadletter` with
topic/partition/offset and the reason; a failed transaction makes the process exit non-zero, and the
restart resumes from the last committed state (fail fast, recover from Kafka).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from kracked import metrics
from kracked.kafka import consumer_config, ensure_topics, producer_config
from kracked.settings import KafkaSettings
from schemas.serde import Serde, SerdeError
from schemas.topics import COMPACTED, Topic, find_topic

log = logging.getLogger(__name__)

RECORDS_IN = metrics.counter("kracked_consumer_records_in_total", "records consumed", ("service", "topic"))
RECORDS_OUT = metrics.counter("kracked_consumer_records_out_total", "records produced", ("service", "topic"))
DEAD_LETTERS = metrics.counter(
    "kracked_consumer_dead_letters_total", "records sent to the dead-letter topic", ("service", "stage")
)
LAG = metrics.gauge(
    "kracked_consumer_lag", "records behind the end of the partition", ("service", "topic", "partition")
)
COMMITS = metrics.counter("kracked_consumer_commits_total", "transactions committed", ("service",))

TopicPartitionKey = tuple[str, int]


def now_us() -> int:
    return time.time_ns() // 1000


@dataclass(slots=True)
class Inbound:
    """One decoded input record and where it came from."""

    topic: Topic
    topic_name: str
    partition: int
    offset: int
    key: bytes | None
    record: dict[str, Any]
    timestamp_ms: int


class Outbox:
    """Where a service puts its output records (encoded and produced inside the open transaction)."""

    def __init__(self, service: str, producer: Producer, serde: Serde) -> None:
        self._service = service
        self._producer = producer
        self._serde = serde
        self.commit_hook: Callable[[], None] | None = None
        # per output topic, resolved once: its encoder, its prefixed name and its records-out counter
        self._encoders: dict[Topic, Callable[[Mapping[str, Any]], bytes]] = {}
        self._targets: dict[Topic, tuple[str, Any]] = {}

    def commit_now(self) -> None:
        """Commit what was emitted so far, with the offsets read so far, before going on (write-ahead
        for side effects that must not be repeated, e.g. an order about to be sent)."""
        if self.commit_hook is None:
            raise RuntimeError("this outbox cannot commit")
        self.commit_hook()

    def emit(self, topic: Topic, key: str | bytes | None, record: Mapping[str, Any]) -> None:
        self._send(topic, key, self.encoder(topic)(record))

    def encoder(self, topic: Topic) -> Callable[[Mapping[str, Any]], bytes]:
        """The topic's value encoder (raises SerdeError on a record that does not fit the schema)."""
        encode = self._encoders.get(topic)
        if encode is None:
            encode = self._encoders[topic] = self._serde.codec(topic).encode
        return encode

    def _send(self, topic: Topic, key: str | bytes | None, value: bytes) -> None:
        target = self._targets.get(topic)
        if target is None:
            target = self._targets[topic] = (
                topic.name_with(self._serde.prefix),
                RECORDS_OUT.labels(self._service, topic.value),
            )
        name, counter = target
        k = key.encode() if isinstance(key, str) else key
        while True:
            try:
                self._producer.produce(name, value=value, key=k)
                break
            except BufferError:
                # local queue full: let librdkafka deliver, then retry (bounded memory)
                self._producer.poll(0.1)
        counter.inc()

    def dead_letter(
        self, stage: str, error: str, raw: bytes | None, source: Inbound | Message | None
    ) -> None:
        origin_topic = origin_partition = origin_offset = None
        if isinstance(source, Inbound):
            origin_topic, origin_partition, origin_offset = source.topic_name, source.partition, source.offset
        elif source is not None:
            origin_topic, origin_partition, origin_offset = (
                source.topic(),
                source.partition(),
                source.offset(),
            )
        record = {
            "source": self._service,
            "stage": stage,
            "error": error[:2000],
            "raw": raw or b"",
            "channel": None,
            "origin_topic": origin_topic,
            "origin_partition": origin_partition,
            "origin_offset": origin_offset,
            "ts": now_us(),
        }
        log.warning(
            "dead letter (%s) from %s[%s]@%s: %s",
            stage,
            origin_topic,
            origin_partition,
            origin_offset,
            error[:200],
        )
        DEAD_LETTERS.labels(self._service, stage).inc()
        self.emit(Topic.DEADLETTER, self._service, record)


class Service(Protocol):
    """What a consumer service implements; its domain logic lives in its own pure module."""

    name: str
    inputs: tuple[Topic, ...]
    outputs: tuple[Topic, ...]

    def handle(self, item: Inbound, out: Outbox) -> None:
        """Process one record; raise to dead-letter it (the service keeps going)."""

    def tick(self, now: int, out: Outbox, caught_up: bool) -> None:
        """Called after each poll: close windows, publish on a cadence. `caught_up` is True when the
        last poll returned nothing and every assigned partition has been read to its end (only then
        may wall-clock time stand in for event time)."""

    def flush(self, out: Outbox, final: bool) -> None:
        """Make side effects outside Kafka durable (called before every commit; `final` at shutdown)."""

    def revoked(self, partitions: list[TopicPartitionKey]) -> None:
        """These partitions were taken away (after a last commit): drop their state."""

    def checkpoint(self, positions: dict[TopicPartitionKey, int]) -> dict[TopicPartitionKey, tuple[int, str]]:
        """Offsets (and metadata) to commit, given the next offset to read per partition."""
        ...

    def restore(self, committed: dict[TopicPartitionKey, tuple[int, str]]) -> None:
        """State hint for newly assigned partitions (their committed offset and metadata)."""


class BaseService:
    """Defaults for the optional parts of `Service`."""

    name = "service"
    inputs: tuple[Topic, ...] = ()
    outputs: tuple[Topic, ...] = ()

    def tick(self, now: int, out: Outbox, caught_up: bool) -> None:
        return None

    def flush(self, out: Outbox, final: bool) -> None:
        return None

    def revoked(self, partitions: list[TopicPartitionKey]) -> None:
        return None

    def checkpoint(self, positions: dict[TopicPartitionKey, int]) -> dict[TopicPartitionKey, tuple[int, str]]:
        return {tp: (offset, "") for tp, offset in positions.items()}

    def restore(self, committed: dict[TopicPartitionKey, tuple[int, str]]) -> None:
        return None


@dataclass
class RuntimeOptions:
    group_id: str
    commit_interval_s: float = 0.5
    commit_every: int = 20_000
    batch_size: int = 2_000
    poll_timeout_s: float = 0.2
    transactional_id: str | None = None
    consumer_overrides: dict[str, Any] = field(default_factory=dict)
    producer_overrides: dict[str, Any] = field(default_factory=dict)
    stop_when_idle_s: float | None = None  # for tests and replays: stop after this long without input
    max_records: int | None = None  # for tests: stop (cleanly, with a commit) after this many records
    # Static group membership (KIP-345) when set: a restarted instance takes its partitions back at
    # once. Off by default: a static member that rejoins gets its old assignment back even when its
    # subscription changed (e.g. other --topics), so it is only for fixed deployments.
    instance_id: str | None = None


class Runtime:
    """Runs one service against Kafka until `stop()` (or SIGTERM/SIGINT via `install_signal_handlers`)."""

    def __init__(self, service: Service, settings: KafkaSettings, options: RuntimeOptions) -> None:
        self.service = service
        self.settings = settings
        self.options = options
        self.serde = Serde(settings.schema_registry_url, settings.topic_prefix)
        self._stop = threading.Event()
        self._positions: dict[TopicPartitionKey, int] = {}
        self._uncommitted = 0
        self._last_commit = time.monotonic()
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        self.processed = 0
        self._idle_since = time.monotonic()
        self._pending_restore: dict[TopicPartitionKey, tuple[int, str]] | None = None
        # per input topic name, resolved once: its Topic, records-in counter and decoder
        self._inputs: dict[str, tuple[Topic, Any, Callable[[bytes | None], dict[str, Any]]]] = {}

    # ---- lifecycle ---------------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()

    def install_signal_handlers(self) -> None:
        def handler(signum: int, _frame: object) -> None:
            log.info("%s: signal %d, stopping", self.service.name, signum)
            self.stop()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def _input_names(self) -> list[str]:
        return [t.name_with(self.settings.topic_prefix) for t in self.service.inputs]

    def prepare_topics(self) -> None:
        prefix = self.settings.topic_prefix
        names = self._input_names() + [t.name_with(prefix) for t in (*self.service.outputs, Topic.DEADLETTER)]
        ensure_topics(self.settings, names, compacted=[t.name_with(prefix) for t in COMPACTED])

    def run(self) -> int:
        """Consume until stopped; returns the process exit code."""
        self.prepare_topics()
        txn_id = (
            self.options.transactional_id
            or f"kracked-{self.service.name}-{self.options.group_id}-{uuid.uuid4().hex[:8]}"
        )
        producer = Producer(
            producer_config(self.settings, **{"transactional.id": txn_id, **self.options.producer_overrides})
        )
        overrides = dict(self.options.consumer_overrides)
        if self.options.instance_id:
            overrides.setdefault("group.instance.id", self.options.instance_id)
        consumer = Consumer(consumer_config(self.settings, self.options.group_id, **overrides))
        self._producer, self._consumer = producer, consumer
        out = Outbox(self.service.name, producer, self.serde)
        out.commit_hook = lambda: self.commit(out)
        producer.init_transactions(30)
        producer.begin_transaction()
        consumer.subscribe(self._input_names(), on_assign=self._on_assign, on_revoke=self._on_revoke)
        log.info(
            "%s: consuming %s as group %s",
            self.service.name,
            ", ".join(self._input_names()),
            self.options.group_id,
        )
        self._idle_since = time.monotonic()
        try:
            while not self._stop.is_set():
                messages = consumer.consume(self.options.batch_size, self.options.poll_timeout_s)
                if self._pending_restore is not None:
                    # restore outside the rebalance callback (services may read Kafka to rebuild state),
                    # before any record of the new assignment is handled
                    state, self._pending_restore = self._pending_restore, None
                    self.service.restore(state)
                    self._idle_since = time.monotonic()
                if messages:
                    self._idle_since = time.monotonic()
                for msg in messages:
                    self._process(msg, out)
                if self.options.max_records is not None and self.processed >= self.options.max_records:
                    self.stop()
                self.service.tick(now_us(), out, not messages and self._caught_up())
                if self._commit_due():
                    self.commit(out)
                if (
                    self.options.stop_when_idle_s is not None
                    and time.monotonic() - self._idle_since > self.options.stop_when_idle_s
                    and consumer.assignment()
                ):
                    log.info("%s: idle for %.1fs, stopping", self.service.name, self.options.stop_when_idle_s)
                    break
            self.commit(out, final=True)
        finally:
            try:
                consumer.close()
            finally:
                producer.flush(30)
        log.info("%s: stopped after %d records", self.service.name, self.processed)
        return 0

    # ---- per record --------------------------------------------------------------------------
    def _process(self, msg: Message, out: Outbox) -> None:
        err = msg.error()
        if err is not None:
            if err.code() != KafkaError._PARTITION_EOF:
                log.warning("%s: consumer error %s", self.service.name, err)
            return
        topic_name = msg.topic() or ""
        partition, offset = msg.partition() or 0, msg.offset() or 0
        self._positions[(topic_name, partition)] = offset + 1
        self._uncommitted += 1
        self.processed += 1
        source = self._inputs.get(topic_name)
        if source is None:
            topic = find_topic(topic_name, self.settings.topic_prefix)
            source = self._inputs[topic_name] = (
                topic,
                RECORDS_IN.labels(self.service.name, topic.value),
                self.serde.codec(topic).decode,
            )
        topic, counter, decode = source
        counter.inc()
        raw = msg.value()
        try:
            record = decode(raw)
        except SerdeError as exc:
            out.dead_letter("decode", str(exc), raw, msg)
            return
        item = Inbound(topic, topic_name, partition, offset, msg.key(), record, msg.timestamp()[1])
        try:
            self.service.handle(item, out)
        except SerdeError as exc:
            out.dead_letter("serialize", str(exc), raw, item)
        except Exception as exc:  # poison input: one bad record never stops the service
            log.debug("handler failed", exc_info=True)
            out.dead_letter("process", f"{type(exc).__name__}: {exc}", raw, item)

    # ---- commits -----------------------------------------------------------------------------
    def _commit_due(self) -> bool:
        if self._uncommitted >= self.options.commit_every:
            return True
        return time.monotonic() - self._last_commit >= self.options.commit_interval_s

    def commit(self, out: Outbox, final: bool = False) -> None:
        """Make side effects durable, then commit outputs and offsets in one transaction."""
        producer, consumer = self._producer, self._consumer
        if producer is None or consumer is None:
            return
        self.service.flush(out, final)
        offsets = [
            TopicPartition(topic, partition, offset, metadata)
            if metadata
            else TopicPartition(topic, partition, offset)
            for (topic, partition), (offset, metadata) in self.service.checkpoint(
                dict(self._positions)
            ).items()
        ]
        try:
            if offsets:
                producer.send_offsets_to_transaction(offsets, consumer.consumer_group_metadata(), 30)
            producer.commit_transaction(60)
        except KafkaException as exc:
            # State in memory no longer matches what Kafka holds: exit and recover from the last commit.
            log.error(
                "%s: transaction failed (%s); exiting to recover from the last commit", self.service.name, exc
            )
            raise
        COMMITS.labels(self.service.name).inc()
        self._uncommitted = 0
        self._last_commit = time.monotonic()
        self._update_lag()
        producer.begin_transaction()

    def _caught_up(self) -> bool:
        consumer = self._consumer
        if consumer is None:
            return False
        assignment = consumer.assignment()
        if not assignment:
            return False
        try:
            for tp in consumer.position(assignment):
                _low, high = consumer.get_watermark_offsets(tp, timeout=5)
                if tp.offset < 0 and high > 0:
                    # nothing consumed yet on this partition: caught up only if it holds nothing past the commit
                    committed = consumer.committed([tp], timeout=5)[0].offset
                    if committed < high:
                        return False
                elif tp.offset < high:
                    return False
        except KafkaException:
            return False
        return True

    def _update_lag(self) -> None:
        consumer = self._consumer
        if consumer is None:
            return
        for (topic, partition), position in self._positions.items():
            try:
                _low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), cached=True)
            except KafkaException:
                continue
            if high >= 0:
                LAG.labels(self.service.name, topic, str(partition)).set(max(0, high - position))

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        committed = consumer.committed(partitions, timeout=30)
        state = {
            (tp.topic, tp.partition): (tp.offset, tp.metadata or "")
            for tp in committed
            if tp.offset is not None and tp.offset >= 0
        }
        log.info(
            "%s: assigned %s",
            self.service.name,
            ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions),
        )
        self._pending_restore = state

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.info(
            "%s: revoked %s", self.service.name, ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions)
        )
        if self._producer is not None:
            self.commit(Outbox(self.service.name, self._producer, self.serde))
        for tp in partitions:
            self._positions.pop((tp.topic, tp.partition), None)
        self.service.revoked([(tp.topic, tp.partition) for tp in partitions])


def read_topic(settings: KafkaSettings, topic: Topic) -> list[dict[str, Any]]:
    """Every record of a topic (all partitions, from the beginning to its current end), decoded.

    For state a service rebuilds at start from a compacted topic (the orders ledger, instruments).
    Undecodable records are logged and skipped.
    """
    name = topic.name_with(settings.topic_prefix)
    consumer = Consumer(consumer_config(settings, f"kracked-read-{uuid.uuid4().hex[:8]}"))
    serde = Serde(settings.schema_registry_url, settings.topic_prefix)
    records: list[dict[str, Any]] = []
    try:
        meta = consumer.list_topics(name, timeout=10).topics.get(name)
        if meta is None or meta.error is not None:
            return records
        for partition in sorted(meta.partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(name, partition), timeout=10)
            if high <= low:
                continue
            consumer.assign([TopicPartition(name, partition, low)])
            while True:
                batch = consumer.consume(1000, 2.0)
                if not batch:
                    # transaction markers may end the partition: stop once the position reached the end
                    if consumer.position([TopicPartition(name, partition)])[0].offset >= high:
                        break
                    continue
                for msg in batch:
                    if msg.error() is not None:
                        continue
                    try:
                        records.append(serde.decode(topic, msg.value()))
                    except SerdeError as exc:
                        log.warning("unreadable record at %s[%d]@%s: %s", name, partition, msg.offset(), exc)
                if (batch[-1].offset() or 0) + 1 >= high:
                    break
    finally:
        consumer.close()
    return records
