"""The replay engine: merged input → (re-published topics) and/or (services run in-process).

In-process services are the very classes the live services run (`BookService`, `BarsService`,
`SpreadService`), fed the same `Inbound` items and a virtual clock: `tick()` receives the event time
of the record being replayed instead of the wall clock, so a replay is deterministic. Outputs are
produced under the target prefix and handed synchronously to any other in-process service that reads
that topic (book → spread from `kracked.book.top`).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TextIO

from confluent_kafka import Producer

from consumers.replay.domain import Pacer, ReplayItem, progress_line
from consumers.runtime import Inbound, Outbox, Service
from kracked.kafka import ensure_topics, make_producer
from kracked.settings import KafkaSettings
from schemas.serde import Serde
from schemas.topics import COMPACTED, Topic

log = logging.getLogger(__name__)

END_OF_INPUT_US = 2**62


def ensure_target_topics(
    target: KafkaSettings, services: Iterable[Service], republished: Iterable[Topic]
) -> None:
    """Create, under the target prefix, what a replay writes: the services' outputs, the re-published
    inputs and the dead-letter topic (compacted where the catalog says so)."""
    names = {Topic.DEADLETTER, *republished}
    for service in services:
        names.update(service.outputs)
    prefix = target.topic_prefix
    ensure_topics(
        target,
        [t.name_with(prefix) for t in names],
        compacted=[t.name_with(prefix) for t in COMPACTED],
    )


class Deliveries:
    """The replay producer's delivery reports: librdkafka reports failures only (no event per
    delivered record, `delivery.report.only.error`); transient errors are retried without end
    (`message.timeout.ms` 0), so what arrives here is a record that will never land."""

    def __init__(self) -> None:
        self.failed = 0
        self.first: str | None = None

    def __call__(self, err: Any, msg: Any) -> None:
        if err is not None:
            self.failed += 1
            if self.first is None:
                self.first = f"{msg.topic()}: {err.str()}"

    def producer(self, target: KafkaSettings) -> Producer:
        return make_producer(target, **{"delivery.report.only.error": True}, on_delivery=self)

    def settle(self, producer: Producer) -> None:
        """Wait until every record is delivered; RuntimeError when one is not or cannot be."""
        if producer.flush(120) != 0:
            raise RuntimeError("replay: records still undelivered after 120 s")
        if self.failed:
            raise RuntimeError(
                f"replay: {self.failed} record(s) could not be delivered (first: {self.first})"
            )


class ChainOutbox(Outbox):
    """Produces under the target prefix and feeds downstream in-process services."""

    def __init__(
        self, producer: Producer, serde: Serde, downstream: Mapping[Topic, list[Service]], clock: list[int]
    ) -> None:
        super().__init__("replay", producer, serde)
        self._downstream = downstream
        self._clock = clock
        self._seq: dict[Topic, int] = {}

    def emit(self, topic: Topic, key: str | bytes | None, record: Mapping[str, Any]) -> None:
        self._send(topic, key, self.encoder(topic)(record))
        consumers = self._downstream.get(topic)
        if consumers:
            # downstream services see the record as if read from the topic (offsets counted per topic)
            offset = self._seq[topic] = self._seq.get(topic, -1) + 1
            item = Inbound(
                topic,
                topic.name_with(self._serde.prefix),
                0,
                offset,
                key.encode() if isinstance(key, str) else key,
                dict(record),
                self._clock[0] // 1000,
            )
            for service in consumers:
                service.handle(item, self)


@dataclass
class ReplayResult:
    records: int
    republished: int
    elapsed_s: float


class Replayer:
    def __init__(
        self,
        target: KafkaSettings,
        services: list[Service],
        republish: bool,
        speed: float | None,
        progress: TextIO | None = None,
        producer: Producer | None = None,
    ) -> None:
        self.target = target
        self.services = services
        self.republish = republish
        self.pacer = Pacer(speed)
        self.progress = progress
        self.serde = Serde(target.schema_registry_url, target.topic_prefix)
        self.deliveries = Deliveries()
        self.producer = producer or self.deliveries.producer(target)
        self.clock = [0]
        by_input: dict[Topic, list[Service]] = {}
        for service in services:
            for topic in service.inputs:
                by_input.setdefault(topic, []).append(service)
        self.by_input = by_input
        self.out = ChainOutbox(self.producer, self.serde, by_input, self.clock)
        self._names: dict[Topic, str] = {}

    def prepare(self, inputs: Iterable[Topic]) -> None:
        ensure_target_topics(self.target, self.services, inputs if self.republish else ())

    def run(
        self, items: Iterable[ReplayItem], total: int | None, sleep: Callable[[float], None] = time.sleep
    ) -> ReplayResult:
        started = time.monotonic()
        done = republished = 0
        # Hot loop (one pass per replayed record): everything it needs is bound to a local first, the
        # pacer is skipped at max speed and the progress line is checked every 2,000 records only.
        by_input = self.by_input
        clock = self.clock
        out = self.out
        pace = self.pacer.delay if self.pacer.speed is not None else None
        republish = self._republish if self.republish else None
        monotonic = time.monotonic
        report_every = 2000 if self.progress is not None else -1
        next_report = report_every
        last_report = 0.0
        for item in items:
            if pace is not None:
                wait = pace(item.event_us, monotonic())
                if wait > 0:
                    sleep(wait)
            event_us = clock[0] = item.event_us
            topic = item.topic
            if republish is not None:
                republish(topic, item)
                republished += 1
            consumers = by_input.get(topic)
            if consumers:
                inbound = Inbound(
                    topic,
                    item.topic_name,
                    item.partition,
                    item.offset,
                    item.key,
                    item.record,
                    item.timestamp_ms,
                )
                for service in consumers:
                    service.handle(inbound, out)
                    service.tick(event_us, out, False)
            done += 1
            if done == next_report:
                next_report += report_every
                now = monotonic()
                if now - last_report > 0.2:
                    last_report = now
                    self._report(done, total, now - started)
        for service in self.services:
            # End of the input: close the open windows as a live service does once the wall clock has
            # passed them (replays are of history), then make side effects durable.
            service.tick(END_OF_INPUT_US, out, True)
            service.flush(out, True)
        self.deliveries.settle(self.producer)
        elapsed = time.monotonic() - started
        if self.progress is not None:
            self.progress.write("\r" + progress_line(done, total, elapsed) + "\n")
        return ReplayResult(done, republished, elapsed)

    def _report(self, done: int, total: int | None, elapsed: float) -> None:
        if self.progress is not None:
            self.progress.write("\r" + progress_line(done, total, elapsed))
            self.progress.flush()

    def _republish(self, topic: Topic, item: ReplayItem) -> None:
        value = self.out.encoder(topic)(item.record)
        name = self._names.get(topic)
        if name is None:
            name = self._names[topic] = topic.name_with(self.target.topic_prefix)
        while True:
            try:
                self.producer.produce(name, value=value, key=item.key, timestamp=item.timestamp_ms)
                break
            except BufferError:
                self.producer.poll(0.1)


def default_progress() -> TextIO | None:
    return sys.stderr if sys.stderr.isatty() else None
