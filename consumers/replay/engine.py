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
        value = self._serde.encode(topic, record)
        self._send(topic, key, value)
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
        self.producer = producer or make_producer(target)
        self.clock = [0]
        by_input: dict[Topic, list[Service]] = {}
        for service in services:
            for topic in service.inputs:
                by_input.setdefault(topic, []).append(service)
        self.by_input = by_input
        self.out = ChainOutbox(self.producer, self.serde, by_input, self.clock)

    def prepare(self, inputs: Iterable[Topic]) -> None:
        names = {t for t in inputs} if self.republish else set()
        for service in self.services:
            names.update(service.outputs)
        names.add(Topic.DEADLETTER)
        prefix = self.target.topic_prefix
        ensure_topics(
            self.target,
            [t.name_with(prefix) for t in names],
            compacted=[t.name_with(prefix) for t in COMPACTED],
        )

    def run(
        self, items: Iterable[ReplayItem], total: int | None, sleep: Callable[[float], None] = time.sleep
    ) -> ReplayResult:
        started = time.monotonic()
        last_report = 0.0
        done = republished = 0
        by_input = self.by_input
        for item in items:
            wait = self.pacer.delay(item.event_us, time.monotonic())
            if wait > 0:
                sleep(wait)
            self.clock[0] = item.event_us
            topic = item.topic
            if self.republish:
                self._republish(topic, item)
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
                    service.handle(inbound, self.out)
                    service.tick(item.event_us, self.out, False)
            done += 1
            if self.progress is not None and done % 2000 == 0:
                now = time.monotonic()
                if now - last_report > 0.2:
                    last_report = now
                    self.progress.write("\r" + progress_line(done, total, now - started))
                    self.progress.flush()
        for service in self.services:
            # End of the input: close the open windows as a live service does once the wall clock has
            # passed them (replays are of history), then make side effects durable.
            service.tick(END_OF_INPUT_US, self.out, True)
            service.flush(self.out, True)
        if self.producer.flush(120) != 0:
            raise RuntimeError("replay: records still undelivered after 120 s")
        elapsed = time.monotonic() - started
        if self.progress is not None:
            self.progress.write("\r" + progress_line(done, total, elapsed) + "\n")
        return ReplayResult(done, republished, elapsed)

    def _republish(self, topic: Topic, item: ReplayItem) -> None:
        value = self.serde.encode(topic, item.record)
        name = topic.name_with(self.target.topic_prefix)
        while True:
            try:
                self.producer.produce(name, value=value, key=item.key, timestamp=item.timestamp_ms)
                break
            except BufferError:
                self.producer.poll(0.1)


def default_progress() -> TextIO | None:
    return sys.stderr if sys.stderr.isatty() else None
