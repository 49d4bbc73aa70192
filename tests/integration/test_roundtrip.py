"""Foundation: a real broker and registry answer, and an Avro record makes a real round trip."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from confluent_kafka import Consumer
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from kracked.kafka import consumer_config, make_producer
from schemas.serde import Serde, load_schema_text
from schemas.topics import Topic
from tests.integration.conftest import KafkaTest


def _continuity(i: int) -> dict[str, object]:
    return {
        "event": "connect",
        "source": "test",
        "channel": "book",
        "symbol": "BTC/USD",
        "gap_start": None,
        "gap_end": None,
        "expected": None,
        "received": None,
        "epoch": i,
        "detail": f"round trip {i}",
        "ts": 1_700_000_000_000_000 + i,
    }


def test_avro_round_trip_through_real_topic_and_registry(kafka: KafkaTest) -> None:
    kafka.create_topics(Topic.CONTINUITY)
    serde = Serde(kafka.settings.schema_registry_url, kafka.prefix)
    topic = kafka.topic(Topic.CONTINUITY)
    producer = make_producer(kafka.settings)
    sent = [_continuity(i) for i in range(20)]
    for record in sent:
        producer.produce(topic, key=b"BTC/USD", value=serde.encode(Topic.CONTINUITY, record))
    assert producer.flush(30) == 0

    consumer = Consumer(consumer_config(kafka.settings, kafka.group("roundtrip")))
    consumer.subscribe([topic])
    got: list[bytes] = []
    try:
        for _ in range(100):
            msg = consumer.poll(1.0)
            if msg is not None and msg.error() is None:
                got.append(msg.value())
            if len(got) == len(sent):
                break
    finally:
        consumer.close()
    assert [serde.decode(Topic.CONTINUITY, raw) for raw in got] == sent
    # the wire format is Confluent's: magic byte 0 + registry id, readable by AvroDeserializer
    assert got[0][0] == 0
    schema_id = int.from_bytes(got[0][1:5], "big")
    assert schema_id == serde.codec(Topic.CONTINUITY).schema_id()
    # kracked's subjects are `<topic>-value` (TopicNameStrategy); confluent-kafka 2.16's default
    # strategy first asks the registry for "associations", which Apicurio does not always answer
    confluent = AvroDeserializer(
        serde.registry, load_schema_text(Topic.CONTINUITY), conf={"subject.name.strategy.type": "TOPIC"}
    )
    via_confluent = confluent(got[3], SerializationContext(topic, MessageField.VALUE))
    assert via_confluent == {**sent[3], "ts": datetime.fromtimestamp(1_700_000_000.000003, UTC)}
    registered = serde.registry.get_latest_version(f"{topic}-value")
    assert (
        json.loads(registered.schema.schema_str)["name"]
        == json.loads(load_schema_text(Topic.CONTINUITY))["name"]
    )
