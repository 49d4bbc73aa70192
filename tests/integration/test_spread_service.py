"""`kracked spread` on a real broker: the published statistics equal the domain's on the same tickers."""

from __future__ import annotations

import random
from typing import Any

from consumers.spread.domain import SpreadBuilder
from consumers.spread.service import SpreadService
from schemas.topics import Topic
from tests.integration.conftest import KafkaTest
from tests.integration.helpers import ServiceThread, produce, read_all

T0 = 1_700_000_000_000_000


def tickers(n: int) -> list[dict[str, Any]]:
    rng = random.Random(3)
    out = []
    ts = T0
    for i in range(n):
        ts += rng.choice((100_000, 700_000, 3_000_000))
        mid = 30_000_0 + rng.randint(-50, 50)
        half = rng.randint(1, 9)
        out.append(
            {
                "symbol": "BTC/USD" if i % 3 else "ETH/USD",
                "type": "update",
                "bid": f"{(mid - half) // 10}.{(mid - half) % 10}",
                "bid_qty": "1.00000000",
                "ask": f"{(mid + half) // 10}.{(mid + half) % 10}",
                "ask_qty": "2.00000000",
                "last": f"{mid // 10}.{mid % 10}",
                "volume": "10.0",
                "vwap": "30000.0",
                "low": "29000.0",
                "high": "31000.0",
                "change": "1.0",
                "change_pct": "0.01",
                "event_trigger": "bbo",
                "ts_event": ts,
                "ts_recv": ts + 500,
            }
        )
    return out


def test_spread_service_publishes_the_domain_statistics(kafka: KafkaTest) -> None:
    kafka.create_topics(Topic.TICKER, Topic.SPREAD, Topic.DEADLETTER)
    records = tickers(600)
    produce(kafka, Topic.TICKER, records)
    service = SpreadService("ticker", (60, 300), grace_ms=0, settings=kafka.settings)
    ServiceThread(service, kafka, stop_when_idle_s=3.0).start().wait_idle()
    got = read_all(kafka, Topic.SPREAD)

    builder = SpreadBuilder("ticker", (60, 300))
    expected = []
    for offset, record in enumerate(records):
        expected += builder.add_ticker(record, 0, offset).closed
    expected += builder.advance(2**62)
    assert len(got) == len(expected) > 10
    key = lambda r: (r["symbol"], r["interval_s"], r["start"])  # noqa: E731
    assert sorted(got, key=key) == sorted((s.as_record(s.end) for s in expected), key=key)
    assert {r["source"] for r in got} == {"ticker"}
