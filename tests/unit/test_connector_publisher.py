"""connector.publisher: back-pressure, delivery failures retried or dead-lettered, whole frames only."""

from __future__ import annotations

import asyncio
import io
import json
import struct
from typing import Any

import fastavro
import pytest
from confluent_kafka import KafkaError

from connector.kraken.messages import Trade
from connector.mapping import Out, trade_record
from connector.publisher import MAX_DEADLETTER_RAW, Publisher
from schemas.serde import reader_schema
from schemas.topics import Topic


class FakeProducer:
    """Accepts up to `room` messages, then raises BufferError like librdkafka's bounded queue."""

    def __init__(self, room: int = 1_000_000) -> None:
        self.room = room
        self.sent: list[tuple[str, bytes, str]] = []
        self.polls = 0

    def produce(self, topic: str, value: bytes, key: str) -> None:
        if len(self.sent) >= self.room:
            raise BufferError("Local: Queue full")
        self.sent.append((topic, value, key))

    def poll(self, timeout: float = 0) -> int:
        self.polls += 1
        return 0

    def flush(self, timeout: float = 0) -> int:
        return 0

    def __len__(self) -> int:
        return 0


class FakeCodec:
    def __init__(self, schema_id: int) -> None:
        self._id = schema_id

    def schema_id(self) -> int:
        return self._id


class FakeSerde:
    prefix = "p."

    def codec(self, topic: Topic) -> FakeCodec:
        return FakeCodec(list(Topic).index(topic) + 100)


class FakeMessage:
    def __init__(self, topic: str, key: bytes, value: bytes) -> None:
        self._t, self._k, self._v = topic, key, value

    def topic(self) -> str:
        return self._t

    def key(self) -> bytes:
        return self._k

    def value(self) -> bytes:
        return self._v


def _publisher(room: int = 1_000_000) -> tuple[Publisher, FakeProducer]:
    producer = FakeProducer(room)
    pub = Publisher(producer, FakeSerde(), "connector")  # type: ignore[arg-type]
    pub.prepare(list(Topic))
    return pub, producer


def _decode(topic: Topic, value: bytes) -> dict[str, Any]:
    magic, schema_id = struct.unpack(">bI", value[:5])
    assert magic == 0 and schema_id == list(Topic).index(topic) + 100
    record = fastavro.schemaless_reader(io.BytesIO(value[5:]), reader_schema(topic), None)
    assert isinstance(record, dict)
    return record


def _trade(i: int) -> Out:
    t = Trade("BTC/USD", "buy", "1.5", "2", "limit", i, "2023-09-25T07:49:37.708706Z")
    return Out(Topic.TRADE, "BTC/USD", trade_record(t, "update", 1))


def test_records_are_framed_with_the_registered_schema_id_and_keyed() -> None:
    pub, producer = _publisher()
    pub.publish(_trade(5))
    [(topic, value, key)] = producer.sent
    assert (topic, key) == ("p.kraken.trade", "BTC/USD")
    assert _decode(Topic.TRADE, value)["trade_id"] == 5
    assert pub.produced[Topic.TRADE] == 1


def test_full_queue_blocks_keeps_order_and_drains() -> None:
    pub, producer = _publisher(room=2)

    async def body() -> None:
        for i in range(5):
            pub.publish(_trade(i))
        assert pub.blocked and pub.in_flight() == 3
        waiter = asyncio.create_task(pub.wait_writable())
        other = asyncio.create_task(pub.wait_writable())  # two readers wait on one drain
        await asyncio.sleep(0.05)
        assert not waiter.done()
        producer.room = 100  # the broker is back
        await asyncio.wait_for(asyncio.gather(waiter, other), 5)
        assert not pub.blocked

    asyncio.run(body())
    ids = [_decode(Topic.TRADE, v)["trade_id"] for _, v, _ in producer.sent]
    assert ids == [0, 1, 2, 3, 4]  # nothing lost, nothing duplicated, in order
    assert pub.blocked_seconds > 0
    assert pub.produced[Topic.TRADE] == 5


def test_wait_writable_returns_at_once_when_not_blocked() -> None:
    pub, _ = _publisher()
    asyncio.run(asyncio.wait_for(pub.wait_writable(), 1))


def test_flush_writes_the_backlog() -> None:
    pub, producer = _publisher(room=1)
    pub.publish(_trade(1))
    pub.publish(_trade(2))
    producer.room = 10
    assert pub.flush(5) == 0
    assert len(producer.sent) == 2


def test_retriable_delivery_failure_is_produced_again() -> None:
    pub, producer = _publisher()
    err = KafkaError(KafkaError._MSG_TIMED_OUT, "timed out", retriable=True)
    pub.on_delivery(err, FakeMessage("p.kraken.trade", b"BTC/USD", b"value-1"))  # type: ignore[arg-type]
    assert producer.sent == [("p.kraken.trade", b"value-1", "BTC/USD")]
    assert pub.delivery_failures == 1
    assert pub.produced[Topic.TRADE] == 0  # a retry is not a new record


def test_permanent_delivery_failure_becomes_a_dead_letter() -> None:
    pub, producer = _publisher()
    err = KafkaError(KafkaError.MSG_SIZE_TOO_LARGE, "too large", retriable=False)
    pub.on_delivery(err, FakeMessage("p.kraken.book", b"BTC/USD", b"huge"))  # type: ignore[arg-type]
    [(topic, value, key)] = producer.sent
    assert (topic, key) == ("p.kracked.deadletter", "connector")
    record = _decode(Topic.DEADLETTER, value)
    assert (record["stage"], record["raw"]) == ("produce", b"huge")
    assert "MSG_SIZE_TOO_LARGE" in record["error"]
    assert pub.dead_letters == {"produce": 1}
    pub.on_delivery(None, FakeMessage("p.kraken.book", b"k", b"v"))  # type: ignore[arg-type]
    assert pub.delivery_failures == 1


def test_dead_letters_keep_raw_bytes_and_are_bounded() -> None:
    pub, producer = _publisher()
    pub.dead_letter("parse", "invalid JSON", "{é", "book")
    pub.dead_letter("map", "too big", b"x" * (MAX_DEADLETTER_RAW + 10), None)
    first, second = (_decode(Topic.DEADLETTER, v) for _, v, _ in producer.sent)
    assert (first["raw"], first["channel"], first["stage"]) == ("{é".encode(), "book", "parse")
    assert len(second["raw"]) == MAX_DEADLETTER_RAW and "truncated" in second["error"]


def test_publish_all_is_all_or_nothing() -> None:
    pub, producer = _publisher()
    bad = Out(Topic.TRADE, "BTC/USD", {**_trade(2).record, "price": 1.5})  # a float never passes
    with pytest.raises(ValueError):
        pub.publish_all([_trade(1), bad])
    assert producer.sent == []


def test_continuity_event() -> None:
    pub, producer = _publisher()
    pub.continuity("trade_id_gap", "2 missing", channel="trade", symbol="ETH/USD", expected=3, received=5)
    [(topic, value, key)] = producer.sent
    record = _decode(Topic.CONTINUITY, value)
    assert (topic, key) == ("p.kracked.continuity", "ETH/USD")
    assert (record["event"], record["source"], record["expected"], record["received"]) == (
        "trade_id_gap",
        "connector",
        3,
        5,
    )


def test_fatal_error_is_remembered_and_stats_give_latency() -> None:
    pub, _ = _publisher()
    pub.on_error(KafkaError(KafkaError._ALL_BROKERS_DOWN, "down"))
    assert pub.fatal is None and pub.brokers_down
    pub.on_error(KafkaError(KafkaError._FENCED, "fenced", fatal=True))
    assert pub.fatal is not None
    stats = {
        "brokers": {
            "b1": {
                "nodeid": 1,
                "int_latency": {"p50": 1000, "p99": 5000},
                "rtt": {"cnt": 3, "p50": 2000, "p99": 8000},
            },
            "bootstrap": {"nodeid": -1, "rtt": {"cnt": 1, "p50": 9e9}},
        }
    }
    pub.on_stats(json.dumps(stats))
    assert pub.latency == {"0.5": 0.003, "0.99": 0.013}
    assert pub.brokers_down  # no broker UP in these stats
    stats["brokers"]["b1"]["state"] = "UP"
    pub.on_stats(json.dumps(stats))
    assert not pub.brokers_down
