"""Where replayed records come from: a range of Kafka topics (by time or offset) read partition by
partition, each partition as its own lazily consumed stream in offset order."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

from confluent_kafka import Consumer, Message, TopicPartition

from consumers.replay.domain import ReplayItem, event_time_us
from kracked.errors import ConfigError
from kracked.kafka import consumer_config, make_admin
from kracked.settings import KafkaSettings
from schemas.serde import Serde, SerdeError
from schemas.topics import Topic

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Range:
    """Either times (ms since epoch, end exclusive) or offsets (end exclusive); None = open end."""

    from_ms: int | None = None
    to_ms: int | None = None
    from_offset: int | None = None
    to_offset: int | None = None


@dataclass(frozen=True)
class PartitionSpan:
    topic_index: int
    topic: Topic
    name: str
    partition: int
    start: int
    end: int  # exclusive

    @property
    def size(self) -> int:
        return max(0, self.end - self.start)


def plan(settings: KafkaSettings, topics: list[Topic], span: Range) -> list[PartitionSpan]:
    """Resolve the range to concrete offsets per partition; ConfigError for unknown topics."""
    admin = make_admin(settings)
    meta = admin.list_topics(timeout=15)
    probe = Consumer(consumer_config(settings, "kracked-replay-probe"))
    spans: list[PartitionSpan] = []
    try:
        for index, topic in enumerate(topics):
            name = topic.name_with(settings.topic_prefix)
            if name not in meta.topics:
                raise ConfigError(f"topic {name} does not exist on {settings.bootstrap_servers}")
            for partition in sorted(meta.topics[name].partitions):
                low, high = probe.get_watermark_offsets(TopicPartition(name, partition), timeout=15)
                start, end = low, high
                if span.from_ms is not None:
                    start = _offset_for_time(probe, name, partition, span.from_ms, high)
                if span.to_ms is not None:
                    end = _offset_for_time(probe, name, partition, span.to_ms, high)
                if span.from_offset is not None:
                    start = max(start, span.from_offset)
                if span.to_offset is not None:
                    end = min(end, span.to_offset)
                spans.append(PartitionSpan(index, topic, name, partition, max(start, low), min(end, high)))
    finally:
        probe.close()
    return spans


def _offset_for_time(consumer: Consumer, name: str, partition: int, ts_ms: int, high: int) -> int:
    found = consumer.offsets_for_times([TopicPartition(name, partition, ts_ms)], timeout=15)[0]
    return high if found.offset < 0 else int(found.offset)


def raw_batches(settings: KafkaSettings, span: PartitionSpan, batch: int = 5000) -> Iterator[list[Message]]:
    """The messages of one partition span, as consumed (undecoded), batch by batch in offset order.

    A batch may end with messages past the span (the reader of the batch stops at `span.end`)."""
    if span.size == 0:
        return
    consumer = Consumer(consumer_config(settings, "kracked-replay-reader"))
    consumer.assign([TopicPartition(span.name, span.partition, span.start)])
    following = span.start  # offset after the last record read
    try:
        while following < span.end:
            # never ask for more than the span holds: at its end a larger batch would wait out the timeout
            messages = consumer.consume(max(1, min(batch, span.end - following)), 1.0)
            if not messages:
                position = consumer.position([TopicPartition(span.name, span.partition)])[0].offset
                if position >= span.end:  # transaction markers may sit at the end of the span
                    return
                continue
            for msg in reversed(messages):
                if msg.error() is None:
                    following = max(following, (msg.offset() or 0) + 1)
                    break
            yield messages
    finally:
        consumer.close()


def read_span(
    settings: KafkaSettings, serde: Serde, span: PartitionSpan, batch: int = 5000
) -> Iterator[ReplayItem]:
    """The records of one partition span, decoded, in offset order (undecodable values are skipped)."""
    for messages in raw_batches(settings, span, batch):
        items, done = _decode_batch(span, serde, messages)
        # handing the whole batch over with `yield from` resumes this frame once per batch, not
        # once per record
        yield from items
        if done:
            return


def _decode_batch(
    span: PartitionSpan, serde: Serde, messages: list[Message]
) -> tuple[list[ReplayItem], bool]:
    """Decode one consumed batch into replay items; True once the span's end was reached."""
    decode = serde.codec(span.topic).decode
    index, topic, name, partition, end = span.topic_index, span.topic, span.name, span.partition, span.end
    items: list[ReplayItem] = []
    append = items.append
    for msg in messages:
        if msg.error():
            continue
        offset = msg.offset() or 0
        if offset >= end:
            return items, True
        try:
            record = decode(msg.value())
        except SerdeError as exc:
            log.warning("skipping %s[%d]@%d: %s", name, partition, offset, exc)
            continue
        ts_ms = msg.timestamp()[1]
        event_us = record.get("ts_event")
        if not isinstance(event_us, int):  # the rule of `event_time_us`, its first case inlined
            event_us = event_time_us(record, ts_ms)
        append(ReplayItem(index, topic, name, partition, offset, msg.key(), record, ts_ms, event_us))
        if offset + 1 >= end:
            return items, True
    return items, False
