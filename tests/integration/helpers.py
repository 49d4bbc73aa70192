"""Helpers for integration tests: produce records, read a topic to the end, run a service in a thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from consumers.runtime import Runtime, RuntimeOptions, Service
from kracked.kafka import consumer_config, make_admin, make_producer
from schemas.serde import Serde
from schemas.topics import Topic
from tests.integration.conftest import KafkaTest


def produce(
    kafka: KafkaTest, topic: Topic, records: Iterable[Mapping[str, Any]], key_field: str = "symbol"
) -> int:
    serde = Serde(kafka.settings.schema_registry_url, kafka.prefix)
    producer = make_producer(kafka.settings)
    n = 0
    for record in records:
        key = record.get(key_field)
        producer.produce(
            kafka.topic(topic),
            key=None if key is None else str(key).encode(),
            value=serde.encode(topic, record),
        )
        n += 1
        if n % 10_000 == 0:
            producer.poll(0)
    assert producer.flush(60) == 0
    return n


def end_offsets(kafka: KafkaTest, topic: Topic) -> dict[int, int]:
    name = kafka.topic(topic)
    meta = make_admin(kafka.settings).list_topics(name, timeout=10)
    consumer = Consumer(consumer_config(kafka.settings, kafka.group("probe")))
    try:
        return {
            p: consumer.get_watermark_offsets(TopicPartition(name, p), timeout=10)[1]
            for p in meta.topics[name].partitions
        }
    finally:
        consumer.close()


def read_all(kafka: KafkaTest, topic: Topic, timeout: float = 60.0) -> list[dict[str, Any]]:
    """Every committed record of a topic, from the beginning to its current end, decoded."""
    return [r for _k, r, _o in read_all_with_keys(kafka, topic, timeout)]


def read_all_with_keys(
    kafka: KafkaTest, topic: Topic, timeout: float = 60.0
) -> list[tuple[bytes | None, dict[str, Any], int]]:
    ends = end_offsets(kafka, topic)
    name = kafka.topic(topic)
    serde = Serde(kafka.settings.schema_registry_url, kafka.prefix)
    consumer = Consumer(consumer_config(kafka.settings, kafka.group("reader")))
    consumer.assign([TopicPartition(name, p, 0) for p in ends])
    out: list[tuple[bytes | None, dict[str, Any], int]] = []
    done = {p for p, end in ends.items() if end <= 0}
    deadline = time.monotonic() + timeout
    try:
        while len(done) < len(ends) and time.monotonic() < deadline:
            for msg in consumer.consume(1000, 0.5):
                if msg.error():
                    continue
                out.append((msg.key(), serde.decode(topic, msg.value()), msg.offset()))
                if msg.offset() + 1 >= ends[msg.partition()]:
                    done.add(msg.partition())
            # transaction markers occupy offsets too: stop when the position reached the end
            for tp in consumer.position([TopicPartition(name, p) for p in ends]):
                if tp.offset >= ends[tp.partition]:
                    done.add(tp.partition)
    finally:
        consumer.close()
    return out


class ServiceThread:
    """Run a service on the real runtime in a background thread (stop() joins it)."""

    def __init__(self, service: Service, kafka: KafkaTest, group: str | None = None, **options: Any) -> None:
        self.runtime = Runtime(
            service, kafka.settings, RuntimeOptions(group_id=group or kafka.group(service.name), **options)
        )
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.runtime.run()
        except BaseException as exc:
            self.error = exc

    def start(self) -> ServiceThread:
        self._thread.start()
        return self

    def wait_idle(self, timeout: float = 120.0) -> None:
        """Wait until the runtime stops by itself (stop_when_idle_s)."""
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "service did not go idle in time"
        if self.error:
            raise self.error

    def stop(self) -> None:
        self.runtime.stop()
        self._thread.join(60)
        if self.error:
            raise self.error
