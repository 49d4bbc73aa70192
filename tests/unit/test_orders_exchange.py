"""ccxt's kraken against a local fake of Kraken's REST API, over real HTTP on 127.0.0.1.

The request bodies are compared with ccxt's own static request tests (reference §8.1, verbatim);
the nonce is ignored as in that file (`skipKeys: ["nonce"]`), and the fields kracked adds to every
order (`cl_ord_id`/`userref`, `deadline`) are checked separately.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import ccxt
import pytest

from consumers.orders.domain import (
    ClientIdField,
    InstrumentBook,
    Mode,
    OrderProcessor,
    RiskLimits,
    Signal,
    Status,
    build_order_call,
    cl_ord_id_for,
    userref_for,
)
from consumers.orders.exchange import CCXT_LOGGER, REDACTED, KrakenGateway, RetryPolicy, build_exchange
from tests.conftest import KRAKEN_CAPTURES
from tests.fakes.kraken_rest import FakeKrakenRest, kraken_signature

API_KEY = "kracked-test-key-5f0c2a9e41d7b3"
API_SECRET = base64.b64encode(bytes(range(7, 71))).decode()
T0 = 1_760_000_000_000_000

# ---- reference §8.1: ccxt static request tests (verbatim input / output) ---------------------------
CREATE_ORDER_CASES: list[tuple[str, list[Any], str]] = [
    (
        "Spot market buy",
        ["LTC/USDT", "market", "buy", 0.1],
        "nonce=1698834065549&pair=LTCUSDT&type=buy&ordertype=market&volume=0.1",
    ),
    (
        "Margin stopLossPrice order (type 2)",
        [
            "BTC/USD",
            "limit",
            "sell",
            0.00012,
            34000,
            {"stopLossPrice": 35000, "leverage": 5, "reduceOnly": True},
        ],
        "nonce=1702704715667&pair=XXBTZUSD&type=sell&ordertype=stop-loss-limit&volume=0.00012&price=35000"
        "&price2=34000&reduce_only=true&leverage=5",
    ),
    (
        "Margin trailing order",
        [
            "BTC/USD",
            "market",
            "sell",
            0.0002,
            None,
            {"trailingAmount": 100, "leverage": 5, "reduceOnly": True},
        ],
        "nonce=1703236727221&pair=XXBTZUSD&type=sell&ordertype=trailing-stop&volume=0.0002&trigger=last"
        "&price=%2B100&reduce_only=true&leverage=5",
    ),
    (
        "Margin trailing limit order",
        [
            "BTC/USD",
            "limit",
            "sell",
            0.0002,
            None,
            {"trailingAmount": 100, "trailingLimitAmount": 100, "leverage": 5, "reduceOnly": True},
        ],
        "nonce=1703236604802&pair=XXBTZUSD&type=sell&ordertype=trailing-stop-limit&volume=0.0002&trigger=last"
        "&price=%2B100&price2=-100&reduce_only=true&leverage=5",
    ),
    (
        "Stop loss limit order (type 2)",
        ["LTC/USDT", "limit", "sell", 0.1, 54, {"stopLossPrice": 55}],
        "nonce=1705242679268&pair=LTCUSDT&type=sell&ordertype=stop-loss-limit&volume=0.1&price=55&price2=54",
    ),
    (
        "take profit market order (type 2)",
        ["LTC/USDT", "market", "sell", 0.1, None, {"takeProfitPrice": 120}],
        "nonce=1705242796801&pair=LTCUSDT&type=sell&ordertype=take-profit&volume=0.1&price=120",
    ),
    (
        "order with multiple oflags combined",
        ["LTC/USDT", "limit", "buy", 0.1, 50, {"postOnly": True, "oflags": "fcib"}],
        "nonce=1715945544767&pair=LTCUSDT&type=buy&ordertype=limit&volume=0.1&price=50&oflags=fcib%2Cpost",
    ),
]

# The same orders as kracked signals: (reference case, signal fields).
SIGNAL_CASES: list[tuple[str, dict[str, Any]]] = [
    ("Spot market buy", {"symbol": "LTC/USDT", "order_type": "market", "side": "buy", "quantity": "0.1"}),
    (
        "Margin stopLossPrice order (type 2)",
        {
            "symbol": "BTC/USD",
            "order_type": "stop-loss-limit",
            "side": "sell",
            "quantity": "0.00012",
            "limit_price": "34000",
            "trigger_price": "35000",
            "leverage": "5",
            "reduce_only": True,
        },
    ),
    (
        "Margin trailing order",
        {
            "symbol": "BTC/USD",
            "order_type": "trailing-stop",
            "side": "sell",
            "quantity": "0.0002",
            "trigger_price": "100",
            "leverage": "5",
            "reduce_only": True,
        },
    ),
    (
        "Margin trailing limit order",
        {
            "symbol": "BTC/USD",
            "order_type": "trailing-stop-limit",
            "side": "sell",
            "quantity": "0.0002",
            "trigger_price": "100",
            "limit_price": "100",
            "leverage": "5",
            "reduce_only": True,
        },
    ),
    (
        "Stop loss limit order (type 2)",
        {
            "symbol": "LTC/USDT",
            "order_type": "stop-loss-limit",
            "side": "sell",
            "quantity": "0.1",
            "limit_price": "54",
            "trigger_price": "55",
        },
    ),
    (
        "take profit market order (type 2)",
        {
            "symbol": "LTC/USDT",
            "order_type": "take-profit",
            "side": "sell",
            "quantity": "0.1",
            "trigger_price": "120",
        },
    ),
]
EXPECTED = {name: output for name, _input, output in CREATE_ORDER_CASES}
# "Stop loss market order (type 2)" is quoted by the reference only from `ordertype=` on.
STOP_LOSS_MARKET_TAIL = "ordertype=stop-loss&volume=0.1&price=55"


def without_nonce(body: str) -> str:
    return "&".join(p for p in body.split("&") if not p.startswith("nonce="))


@pytest.fixture
def kraken() -> Iterator[FakeKrakenRest]:
    with FakeKrakenRest(API_KEY, API_SECRET) as fake:
        yield fake


@pytest.fixture(scope="module")
def instruments() -> InstrumentBook:
    text = (KRAKEN_CAPTURES / "instrument_snapshot_683_pairs.json").read_text()
    book = InstrumentBook()
    for pair in json.loads(text, parse_float=str)["data"]["pairs"]:
        book.update(pair)
    return book


def make_gateway(
    fake: FakeKrakenRest,
    *,
    timeout_s: float = 5.0,
    max_attempts: int = 3,
    secret: str = API_SECRET,
    sleeps: list[float] | None = None,
) -> KrakenGateway:
    exchange = build_exchange(fake.url, API_KEY, secret, timeout_s=timeout_s, rate_limit=False)
    policy = RetryPolicy(max_attempts=max_attempts, backoff_s=0.0, deadline_s=5.0)
    record = sleeps if sleeps is not None else []
    return KrakenGateway(exchange, policy, sleep=record.append)  # no real waiting in tests


def make_processor(
    gateway: KrakenGateway, instruments: InstrumentBook, mode: Mode = Mode.LIVE, **kw: Any
) -> OrderProcessor:
    return OrderProcessor(mode=mode, limits=RiskLimits(), gateway=gateway, instruments=instruments, **kw)


def signal(signal_id: str = "sig-1", **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "signal_id": signal_id,
        "created_at": T0,
        "strategy": "test",
        "symbol": "LTC/USDT",
        "side": "buy",
        "order_type": "market",
        "quantity": "0.1",
    }
    record.update(fields)
    return record


def outcome(proc: OrderProcessor, record: dict[str, Any], **kw: Any) -> dict[str, Any]:
    handled = proc.handle(record, T0 + 1, **kw)
    assert handled.outcome is not None, handled.invalid
    return handled.outcome


# ---- the fake itself ---------------------------------------------------------------------------------


def test_fake_signature_matches_krakens_official_vector() -> None:
    secret = "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg=="
    body = "nonce=1616492376594&ordertype=limit&pair=XBTUSD&price=37500&type=buy&volume=1.25"
    assert (
        kraken_signature("/0/private/AddOrder", "1616492376594", body, secret)
        == "4/dpxb3iT4tp/ZCVEwSnEsLxx0bqyhLpdfOpc6fn7OR8+UClSV5n9E6aSS8MPtnRfp32bAb0nmbRn6H8ndwLUQ=="
    )


@pytest.mark.parametrize(
    ("name", "args", "expected"), CREATE_ORDER_CASES, ids=[c[0] for c in CREATE_ORDER_CASES]
)
def test_ccxt_requests_reach_the_fake_as_in_ccxts_static_tests(
    kraken: FakeKrakenRest, name: str, args: list[Any], expected: str
) -> None:
    exchange = build_exchange(kraken.url, API_KEY, API_SECRET, rate_limit=False)
    order = exchange.create_order(*args)
    adds = kraken.requests_to("AddOrder")
    assert len(adds) == 1 and adds[0].signature_ok and adds[0].path == "/0/private/AddOrder"
    assert adds[0].params["nonce"].isdigit()
    assert without_nonce(adds[0].body) == without_nonce(expected)
    assert order["id"] == next(iter(kraken.orders))
    # ccxt's load_markets went to the fake too (public AssetPairs + Assets)
    assert {r.name for r in kraken.requests if r.method == "GET"} == {"Assets", "AssetPairs"}


def test_other_private_requests_as_in_ccxts_static_tests(kraken: FakeKrakenRest) -> None:
    exchange = build_exchange(kraken.url, API_KEY, API_SECRET, rate_limit=False)
    with contextlib.suppress(ccxt.InvalidOrder):  # unknown order at the fake: EOrder:Unknown order
        exchange.cancel_order("OF7S76-H2IMS-N2ML4U")
    exchange.fetch_open_orders("LTC/USDT")
    exchange.cancel_all_orders_after(10000)
    cancel, open_orders, after = (
        kraken.requests_to(n)[0] for n in ("CancelOrder", "OpenOrders", "CancelAllOrdersAfter")
    )
    assert without_nonce(cancel.body) == "txid=OF7S76-H2IMS-N2ML4U"
    assert without_nonce(open_orders.body) == ""
    assert without_nonce(after.body) == "timeout=10"
    assert all(r.signature_ok for r in (cancel, open_orders, after))


def test_fake_refuses_a_bad_signature(kraken: FakeKrakenRest, instruments: InstrumentBook) -> None:
    wrong = base64.b64encode(b"x" * 64).decode()
    proc = make_processor(make_gateway(kraken, secret=wrong), instruments)
    out = outcome(proc, signal())
    assert out["status"] == "rejected" and "AuthenticationError" in out["reason"]
    assert "EAPI:Invalid key" in out["reason"]
    assert kraken.requests_to("AddOrder")[0].signature_ok is False and kraken.orders == {}


# ---- signals → AddOrder bodies --------------------------------------------------------------------


@pytest.mark.parametrize(("name", "fields"), SIGNAL_CASES, ids=[c[0] for c in SIGNAL_CASES])
def test_signal_orders_send_the_reference_bodies(
    kraken: FakeKrakenRest, instruments: InstrumentBook, name: str, fields: dict[str, Any]
) -> None:
    proc = make_processor(make_gateway(kraken), instruments)
    out = outcome(proc, signal("sig-ref", **fields))
    assert out["status"] == "acknowledged", out["reason"]
    (add,) = kraken.requests_to("AddOrder")
    assert add.body_without("nonce", "cl_ord_id", "deadline") == without_nonce(EXPECTED[name])
    # kracked's additions come after ccxt's fields: the idempotency key and Kraken's deadline
    assert add.body.startswith("nonce=") and add.body_without("nonce").startswith(
        without_nonce(EXPECTED[name])
    )
    assert add.params["cl_ord_id"] == cl_ord_id_for("sig-ref") == out["client_order_id"]
    assert add.params["deadline"].endswith("Z")
    assert out["exchange_order_id"] in kraken.orders and out["attempts"] == 1
    request = json.loads(out["request"])
    assert request["bodies"] == [add.body] and request["endpoint"] == "/0/private/AddOrder"


def test_stop_loss_market_and_limit_orders(kraken: FakeKrakenRest, instruments: InstrumentBook) -> None:
    proc = make_processor(make_gateway(kraken), instruments)
    outcome(proc, signal("stop", side="sell", order_type="stop-loss", trigger_price="55"))
    outcome(proc, signal("limit", order_type="limit", limit_price="50", post_only=True, time_in_force="GTC"))
    stop, limit = kraken.requests_to("AddOrder")
    assert stop.body_without("nonce", "cl_ord_id", "deadline").endswith(STOP_LOSS_MARKET_TAIL)
    assert (
        stop.body_without("nonce", "cl_ord_id", "deadline")
        == "pair=LTCUSDT&type=sell&" + STOP_LOSS_MARKET_TAIL
    )
    assert (
        limit.body_without("nonce", "cl_ord_id", "deadline")
        == "pair=LTCUSDT&type=buy&ordertype=limit&volume=0.1&price=50&timeinforce=GTC&oflags=post"
    )


def test_userref_mode(kraken: FakeKrakenRest, instruments: InstrumentBook) -> None:
    proc = make_processor(make_gateway(kraken), instruments, client_id_field=ClientIdField.USERREF)
    out = outcome(proc, signal("sig-u"))
    (add,) = kraken.requests_to("AddOrder")
    assert add.params["userref"] == str(userref_for("sig-u")) == out["client_order_id"]
    assert "cl_ord_id" not in add.params


def test_exact_decimals_reach_kraken(kraken: FakeKrakenRest, instruments: InstrumentBook) -> None:
    proc = make_processor(make_gateway(kraken), instruments)
    outcome(proc, signal(symbol="BTC/USD", order_type="limit", quantity="0.12345678", limit_price="60123.4"))
    (add,) = kraken.requests_to("AddOrder")
    assert (add.params["volume"], add.params["price"]) == ("0.12345678", "60123.4")


# ---- never twice -----------------------------------------------------------------------------------


def test_timeout_after_kraken_accepted_gives_exactly_one_order(
    kraken: FakeKrakenRest, instruments: InstrumentBook
) -> None:
    kraken.hang_next_add_order(accept=True)
    sleeps: list[float] = []
    proc = make_processor(make_gateway(kraken, timeout_s=0.3, sleeps=sleeps), instruments)
    out = outcome(proc, signal("sig-t"))
    assert kraken.hung.is_set()
    assert len(kraken.requests_to("AddOrder")) == 1 and len(kraken.orders) == 1
    txid = next(iter(kraken.orders))
    assert out["status"] == "acknowledged" and out["exchange_order_id"] == txid
    assert "found after a timeout" in out["reason"] and out["attempts"] == 1
    # the market order filled at the fake: the lookup brings its fill
    assert (out["filled_qty"], out["avg_price"]) == ("0.1", "80.00000")
    lookup = kraken.requests_to("OpenOrders")[0]
    assert lookup.params["cl_ord_id"] == cl_ord_id_for("sig-t")
    assert kraken.requests_to("ClosedOrders")[0].params["cl_ord_id"] == cl_ord_id_for("sig-t")
    assert sleeps and sleeps[0] > 5.0  # waited past Kraken's deadline (5 s) before trusting the lookup


def test_timeout_before_kraken_accepted_is_retried_once_safely(
    kraken: FakeKrakenRest, instruments: InstrumentBook
) -> None:
    kraken.hang_next_add_order(accept=False)
    proc = make_processor(make_gateway(kraken, timeout_s=0.3), instruments)
    out = outcome(proc, signal("sig-r"))
    adds = kraken.requests_to("AddOrder")
    assert len(adds) == 2 and len(kraken.orders) == 1
    assert adds[0].params["cl_ord_id"] == adds[1].params["cl_ord_id"] == cl_ord_id_for("sig-r")
    assert out["status"] == "acknowledged" and out["attempts"] == 2
    # looked up (not found) between the two attempts
    names = [r.name for r in kraken.requests if r.method == "POST"]
    assert names == ["AddOrder", "OpenOrders", "ClosedOrders", "AddOrder"]


def test_replayed_signals_place_no_second_order(kraken: FakeKrakenRest, instruments: InstrumentBook) -> None:
    signals = [
        signal("a", order_type="market"),
        signal("b", order_type="limit", limit_price="50"),
        signal("c", side="sell", order_type="stop-loss", trigger_price="55"),
    ]
    proc = make_processor(make_gateway(kraken), instruments)
    topic = [outcome(proc, s) for s in signals]
    assert [o["status"] for o in topic] == ["acknowledged"] * 3
    assert [outcome(proc, s)["status"] for s in signals] == ["duplicate"] * 3  # replay, same process
    # restart: state comes back from kracked.orders only
    restarted = make_processor(make_gateway(kraken), instruments)
    for record in topic:
        restarted.restore(record)
    replay = [outcome(restarted, s) for s in signals]
    assert [o["status"] for o in replay] == ["duplicate"] * 3
    assert [o["exchange_order_id"] for o in replay] == [o["exchange_order_id"] for o in topic]
    assert len(kraken.requests_to("AddOrder")) == 3 and len(kraken.orders) == 3


def test_crash_during_the_call_is_looked_up_on_restart(
    kraken: FakeKrakenRest, instruments: InstrumentBook
) -> None:
    written: list[dict[str, Any]] = []
    proc = make_processor(make_gateway(kraken), instruments)
    outcome(proc, signal("sig-c"), on_submitted=written.append)  # its final record is "lost" (crash)
    assert [w["status"] for w in written] == ["submitted"]
    restarted = make_processor(make_gateway(kraken), instruments)
    restarted.restore(written[0])
    out = outcome(restarted, signal("sig-c"))
    assert out["status"] == "acknowledged" and out["exchange_order_id"] == next(iter(kraken.orders))
    assert len(kraken.requests_to("AddOrder")) == 1


# ---- errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "exception"),
    [
        ("EOrder:Insufficient funds", "InsufficientFunds"),
        ("EOrder:Invalid price:Invalid price argument", "InvalidOrder"),
        ("EOrder:Order minimum not met", "InvalidOrder"),
        ("EQuery:Invalid asset pair", "BadSymbol"),
        ("EQuery:Unknown asset pair", "ExchangeError"),
        ("EGeneral:Permission denied", "PermissionDenied"),
        ("EService:Market in cancel_only mode", "OnMaintenance"),
    ],
)
def test_kraken_refusals_are_rejected_with_the_reason(
    kraken: FakeKrakenRest, instruments: InstrumentBook, error: str, exception: str
) -> None:
    kraken.fail_next_add_order(error)
    proc = make_processor(make_gateway(kraken), instruments)
    out = outcome(proc, signal())
    assert out["status"] == "rejected" and out["attempts"] == 1
    assert out["reason"].startswith(f"kraken_rejected: {exception}:") and error in out["reason"]
    assert len(kraken.requests_to("AddOrder")) == 1 and kraken.requests_to("OpenOrders") == []
    assert proc.risk.position("LTC/USDT") == 0


def test_network_errors_are_retried_boundedly_then_failed(
    kraken: FakeKrakenRest, instruments: InstrumentBook
) -> None:
    kraken.fail_next_add_order_http(503, times=10)
    proc = make_processor(make_gateway(kraken, max_attempts=3), instruments)
    out = outcome(proc, signal())
    assert out["status"] == "failed" and out["attempts"] == 3
    assert out["reason"].startswith("kraken_failed: 3 attempts sent, last error: ExchangeNotAvailable")
    assert len(kraken.requests_to("AddOrder")) == 3 and kraken.orders == {}
    # each uncertain attempt was looked up before the next one (and once at the end)
    assert len(kraken.requests_to("OpenOrders")) == 3


def test_nothing_sent_means_nothing_to_look_up(kraken: FakeKrakenRest, instruments: InstrumentBook) -> None:
    kraken.fail_next_public(503, times=10)  # ccxt cannot load the markets: AddOrder never goes out
    proc = make_processor(make_gateway(kraken, max_attempts=2), instruments)
    out = outcome(proc, signal())
    assert out["status"] == "failed" and out["attempts"] == 0 and out["ts_sent"] is None
    assert out["reason"].startswith("kraken_failed: 0 attempts sent")
    assert [r.name for r in kraken.requests if r.method == "POST"] == []


def test_rate_limit_refusals_are_retried_without_lookup(
    kraken: FakeKrakenRest, instruments: InstrumentBook
) -> None:
    kraken.fail_next_add_order("EAPI:Rate limit exceeded", times=2)
    proc = make_processor(make_gateway(kraken, max_attempts=3), instruments)
    out = outcome(proc, signal())
    assert out["status"] == "acknowledged" and out["attempts"] == 3
    assert kraken.requests_to("OpenOrders") == [] and len(kraken.orders) == 1


def test_checks_reject_before_any_request(kraken: FakeKrakenRest, instruments: InstrumentBook) -> None:
    limits = RiskLimits(allowed_symbols=frozenset({"LTC/USDT"}))
    proc = OrderProcessor(
        mode=Mode.LIVE, limits=limits, gateway=make_gateway(kraken), instruments=instruments
    )
    reasons = [
        outcome(proc, signal("x1", symbol="BTC/USD", order_type="limit", limit_price="1"))["reason"],
        outcome(proc, signal("x2", valid_until=T0))["reason"],
        outcome(proc, signal("x3", quantity="0.01"))["reason"],
        outcome(proc, signal("x4", order_type="limit", limit_price="50.000001"))["reason"],
    ]
    assert [r.split(":")[0] for r in reasons] == ["symbol_not_allowed", "stale", "minimum", "precision"]
    assert kraken.requests == []


# ---- modes -----------------------------------------------------------------------------------------


def test_dry_run_makes_no_http_call(kraken: FakeKrakenRest, instruments: InstrumentBook) -> None:
    proc = make_processor(make_gateway(kraken), instruments, mode=Mode.DRY_RUN)
    outs = [outcome(proc, signal(f"d{i}")) for i in range(3)]
    assert [o["status"] for o in outs] == ["dry-run"] * 3
    assert json.loads(outs[0]["request"])["params"]["cl_ord_id"] == cl_ord_id_for("d0")
    assert kraken.requests == []


def test_validate_mode_sends_validate_and_places_nothing(
    kraken: FakeKrakenRest, instruments: InstrumentBook
) -> None:
    proc = make_processor(make_gateway(kraken), instruments, mode=Mode.VALIDATE)
    out = outcome(proc, signal())
    (add,) = kraken.requests_to("AddOrder")
    assert add.params["validate"] == "true" and kraken.orders == {}
    assert out["status"] == "acknowledged" and out["mode"] == "validate" and out["exchange_order_id"] is None


def test_validate_timeout_is_retried_without_lookup(
    kraken: FakeKrakenRest, instruments: InstrumentBook
) -> None:
    kraken.hang_next_add_order()
    proc = make_processor(make_gateway(kraken, timeout_s=0.3), instruments, mode=Mode.VALIDATE)
    out = outcome(proc, signal())
    assert out["status"] == "acknowledged" and out["attempts"] == 2
    assert kraken.requests_to("OpenOrders") == [] and kraken.orders == {}


def test_dead_mans_switch(kraken: FakeKrakenRest) -> None:
    gateway = make_gateway(kraken)
    gateway.cancel_all_after(60)
    assert kraken.cancel_after == [60]
    assert kraken.requests_to("CancelAllOrdersAfter")[0].signature_ok


def test_gateway_lookup_reports_fills(kraken: FakeKrakenRest) -> None:
    gateway = make_gateway(kraken)
    call = build_order_call(Signal.from_record(signal("sig-l")))
    assert gateway.lookup(call) is None
    assert gateway.place(call, validate=False).status is Status.ACKNOWLEDGED
    found = gateway.lookup(call)
    assert (
        found is not None and found.status == "closed" and Decimal(found.filled_qty or "0") == Decimal("0.1")
    )


# ---- secrets ---------------------------------------------------------------------------------------


def test_key_and_secret_never_leak(
    kraken: FakeKrakenRest,
    instruments: InstrumentBook,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    gateway = make_gateway(kraken, timeout_s=0.3)
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger=CCXT_LOGGER)  # even with ccxt's request logging switched on
    proc = make_processor(gateway, instruments)
    kraken.fail_next_add_order("EOrder:Insufficient funds")
    kraken.hang_next_add_order(accept=True)
    outs = [outcome(proc, signal(f"s{i}")) for i in range(3)]
    assert [o["status"] for o in outs] == ["rejected", "acknowledged", "acknowledged"]
    captured = capsys.readouterr()
    assert REDACTED in caplog.text  # ccxt's DEBUG line with the headers was emitted, and redacted
    recorded = json.dumps([(r.headers, r.body, r.query) for r in kraken.requests])
    assert all(r.had_api_key for r in kraken.requests_to("AddOrder"))  # the key was used...
    for secret in (API_KEY, API_SECRET):  # ...and appears nowhere else
        assert secret not in caplog.text
        assert secret not in captured.out and secret not in captured.err
        assert secret not in json.dumps(outs)
        assert secret not in recorded
