"""`kracked orders` on a real broker against a local stand-in for Kraken's REST API: orders are placed
once, a replay of the signal topic places none again, dry-run calls nothing, secrets never leak."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from consumers.orders.domain import Mode
from consumers.orders.service import OrdersService
from consumers.orders.settings import OrdersSettings
from schemas.topics import Topic
from tests.conftest import KRAKEN_CAPTURES
from tests.fakes.kraken_rest import FakeKrakenRest
from tests.integration.conftest import KafkaTest
from tests.integration.helpers import ServiceThread, produce, read_all
from tests.unit.test_orders_exchange import API_KEY, API_SECRET

T0 = 1_800_000_000_000_000


def instrument_records() -> list[dict[str, Any]]:
    """The real instrument capture, mapped by the connector's own mapping (BTC/USD and ETH/USD pairs)."""
    from connector.kraken.messages import parse
    from connector.mapping import instrument_records as to_records

    msg = parse((KRAKEN_CAPTURES / "instrument_snapshot_683_pairs.json").read_text())
    return [o.record for o in to_records(msg, T0) if o.record["symbol"] in ("BTC/USD", "ETH/USD")]  # type: ignore[arg-type]


def signals(n: int) -> list[dict[str, Any]]:
    return [
        {
            "signal_id": f"sig-{i}",
            "created_at": T0 + i,
            "strategy": "toy",
            "symbol": "BTC/USD",
            "side": "buy" if i % 2 == 0 else "sell",
            "order_type": "limit",
            "quantity": "0.0010",
            "limit_price": f"{30000 + i}.5",
        }
        for i in range(n)
    ]


def run(kafka: KafkaTest, settings: OrdersSettings, group: str) -> None:
    service = OrdersService(settings, kafka.settings)
    ServiceThread(service, kafka, group=group, stop_when_idle_s=3.0, batch_size=100).start().wait_idle()


@pytest.fixture
def fake() -> Any:
    with FakeKrakenRest(API_KEY, API_SECRET) as server:
        yield server


def test_live_orders_once_and_never_again_on_replay(
    kafka: KafkaTest,
    fake: FakeKrakenRest,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    kafka.create_topics(Topic.SIGNALS, Topic.INSTRUMENT, Topic.TICKER, Topic.ORDERS, Topic.DEADLETTER)
    produce(kafka, Topic.INSTRUMENT, instrument_records())
    produce(kafka, Topic.SIGNALS, signals(4), key_field="symbol")
    settings = OrdersSettings(
        mode=Mode.LIVE,
        rest_url=fake.url,
        api_key=API_KEY,
        api_secret=API_SECRET,
        allowed_symbols=frozenset({"BTC/USD"}),
        rate_limit=False,
    )
    run(kafka, settings, kafka.group("orders"))
    assert len(fake.placed_orders()) == 4
    outcomes = read_all(kafka, Topic.ORDERS)
    final = {o["signal_id"]: o["status"] for o in outcomes if o["status"] != "submitted"}
    assert final == {f"sig-{i}": "acknowledged" for i in range(4)}
    assert all(o["exchange_order_id"] for o in outcomes if o["status"] == "acknowledged")

    # the signal topic is replayed (a new consumer group reads it from the start), plus one new signal
    produce(kafka, Topic.SIGNALS, signals(5)[4:], key_field="symbol")
    run(kafka, settings, kafka.group("orders-replay"))
    assert len(fake.placed_orders()) == 5, "a replayed signal was executed twice"
    later = read_all(kafka, Topic.ORDERS)[len(outcomes) :]
    assert (
        sorted(o["status"] for o in later if o["status"] != "submitted")
        == ["acknowledged"] + ["duplicate"] * 4
    )

    # secrets: not in logs, not in any record of the topic, not in test output
    raw = json.dumps(read_all(kafka, Topic.ORDERS)).encode()
    captured = capsys.readouterr()
    for secret in (API_KEY, API_SECRET):
        assert secret not in caplog.text
        assert secret.encode() not in raw
        assert secret not in captured.out + captured.err


def test_dry_run_calls_nothing_and_rejects_bad_signals(kafka: KafkaTest, fake: FakeKrakenRest) -> None:
    kafka.create_topics(Topic.SIGNALS, Topic.INSTRUMENT, Topic.TICKER, Topic.ORDERS, Topic.DEADLETTER)
    produce(kafka, Topic.INSTRUMENT, instrument_records())
    batch = signals(3)
    batch[1]["quantity"] = "0.00000001"  # below Kraken's minimum for BTC/USD
    batch[2]["valid_until"] = 1_600_000_000_000_000  # 2020: stale
    produce(kafka, Topic.SIGNALS, batch, key_field="symbol")
    settings = OrdersSettings(mode=Mode.DRY_RUN, rest_url=fake.url)
    run(kafka, settings, kafka.group("orders"))
    assert fake.requests == []
    outcomes = {o["signal_id"]: o for o in read_all(kafka, Topic.ORDERS)}
    assert outcomes["sig-0"]["status"] == "dry-run" and json.loads(outcomes["sig-0"]["request"])
    assert outcomes["sig-1"]["status"] == "rejected" and "min" in outcomes["sig-1"]["reason"]
    assert outcomes["sig-2"]["status"] == "rejected" and "stale" in outcomes["sig-2"]["reason"]
