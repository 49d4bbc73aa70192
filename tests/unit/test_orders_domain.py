"""Pure domain of `kracked orders`: parsing, checks, ccxt mapping, ledger, processor (no network)."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import fastavro
import pytest

from consumers.orders.domain import (
    ClientIdField,
    Execution,
    FoundOrder,
    InstrumentBook,
    LookupFailed,
    Mode,
    OrderCall,
    OrderLedger,
    OrderProcessor,
    PairRules,
    RiskLimits,
    Signal,
    SignalError,
    Status,
    SymbolLimits,
    build_order_call,
    check_instrument,
    check_shape,
    cl_ord_id_for,
    userref_for,
)
from consumers.orders.settings import OrdersSettings, add_arguments
from kracked.errors import ConfigError
from schemas.serde import strip_timestamps
from schemas.topics import Topic, schema_dir
from tests.conftest import KRAKEN_CAPTURES

T0 = 1_760_000_000_000_000  # µs


def load_pairs() -> list[dict[str, Any]]:
    """Kraken's real instrument snapshot, decimals kept as text."""
    text = (KRAKEN_CAPTURES / "instrument_snapshot_683_pairs.json").read_text()
    pairs: list[dict[str, Any]] = json.loads(text, parse_float=str)["data"]["pairs"]
    return pairs


@pytest.fixture(scope="module")
def instruments() -> InstrumentBook:
    book = InstrumentBook()
    for pair in load_pairs():
        book.update(pair)
    return book


def sig(**overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "signal_id": "sig-1",
        "created_at": T0,
        "strategy": "test",
        "symbol": "BTC/USD",
        "side": "buy",
        "order_type": "limit",
        "quantity": "0.0010",
        "limit_price": "60000.5",
        "trigger_price": None,
        "time_in_force": None,
        "post_only": False,
        "reduce_only": False,
        "leverage": None,
        "valid_until": None,
    }
    record.update(overrides)
    return record


def processor(instruments: InstrumentBook, mode: Mode = Mode.DRY_RUN, **kw: Any) -> OrderProcessor:
    limits = kw.pop("limits", RiskLimits())
    clock = kw.pop("clock", lambda: T0 + 5)
    return OrderProcessor(mode=mode, limits=limits, instruments=instruments, clock=clock, **kw)


# ---- schemas --------------------------------------------------------------------------------------


def avro(topic: Topic) -> Any:
    return fastavro.parse_schema(strip_timestamps(json.loads((schema_dir() / topic.schema_file).read_text())))


def roundtrip(topic: Topic, record: dict[str, Any]) -> dict[str, Any]:
    schema = avro(topic)
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, record)
    buf.seek(0)
    result = fastavro.schemaless_reader(buf, schema, schema)
    assert isinstance(result, dict)
    return result


def test_schemas_document_every_field_and_mark_decimals() -> None:
    for topic in (Topic.SIGNALS, Topic.ORDERS):
        raw = json.loads((schema_dir() / topic.schema_file).read_text())
        for f in raw["fields"]:
            assert f.get("doc"), f"{topic}: {f['name']} has no doc"
            if isinstance(f["type"], list):
                assert f["type"][0] == "null" and f["default"] is None, f["name"]
        decimals = {f["name"] for f in raw["fields"] if f.get("kracked.decimal")}
        assert "quantity" in decimals and "limit_price" in decimals


def test_signal_record_roundtrips_through_avro_and_parses() -> None:
    back = roundtrip(Topic.SIGNALS, sig(valid_until=T0 + 10))
    parsed = Signal.from_record(back)
    assert parsed.quantity == Decimal("0.0010") and parsed.valid_until == T0 + 10


@pytest.mark.parametrize("status", ["rejected", "dry-run", "acknowledged", "duplicate"])
def test_outcome_records_fit_the_orders_schema(instruments: InstrumentBook, status: str) -> None:
    proc = processor(instruments)
    record = sig() if status != "rejected" else sig(quantity="0.00001")
    outcome = proc.handle(record, T0, source_partition=0, source_offset=7).outcome
    if status == "duplicate":
        outcome = proc.handle(record, T0).outcome
    assert outcome is not None
    if status == "acknowledged":
        outcome = {**outcome, "status": "acknowledged", "exchange_order_id": "OABCDE-FGHIJ-KLMNOP"}
    assert outcome["status"] == status
    assert roundtrip(Topic.ORDERS, outcome) == outcome


# ---- Signal parsing -------------------------------------------------------------------------------


def test_signal_parses_exact_decimals_and_datetimes() -> None:
    s = Signal.from_record(sig(created_at=datetime(2025, 10, 9, 8, 53, 20, 123456, tzinfo=UTC), side="BUY"))
    assert s.quantity == Decimal("0.0010") and str(s.quantity) == "0.0010"
    assert s.created_at == T0 + 123456  # 2025-10-09T08:53:20Z = T0
    assert s.side == "buy"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"signal_id": ""}, "signal_id"),
        ({"signal_id": None}, "signal_id"),
        ({"quantity": 0.001}, "quantity"),  # a float never carries a quantity
        ({"quantity": "abc"}, "quantity"),
        ({"quantity": "NaN"}, "quantity"),
        ({"limit_price": 60000.5}, "limit_price"),
        ({"side": "hold"}, "side"),
        ({"order_type": "iceberg"}, "order_type"),
        ({"time_in_force": "FOK"}, "time_in_force"),
        ({"symbol": "BTCUSD"}, "symbol"),
        ({"created_at": "2025-01-01"}, "created_at"),
        ({"post_only": "yes"}, "post_only"),
    ],
)
def test_not_a_signal(change: dict[str, Any], message: str) -> None:
    with pytest.raises(SignalError, match=message):
        Signal.from_record(sig(**change))


def test_not_a_mapping_is_not_a_signal() -> None:
    with pytest.raises(SignalError):
        Signal.from_record(["not", "a", "record"])


# ---- checks ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"quantity": "0"}, "quantity must be > 0"),
        ({"limit_price": None}, "limit_price is required"),
        ({"order_type": "market"}, "limit_price is not allowed"),
        ({"order_type": "stop-loss", "limit_price": None}, "trigger_price is required"),
        ({"trigger_price": "1"}, "trigger_price is not allowed"),
        ({"order_type": "market", "limit_price": None, "post_only": True}, "post_only"),
        ({"post_only": True, "time_in_force": "IOC"}, "IOC"),
        ({"time_in_force": "GTD"}, "GTD needs valid_until"),
        ({"leverage": "0.5"}, "leverage"),
        ({"limit_price": "-1"}, "limit_price must be > 0"),
    ],
)
def test_check_shape(change: dict[str, Any], reason: str) -> None:
    result = check_shape(Signal.from_record(sig(**change)))
    assert result is not None and result.startswith("invalid:") and reason in result


def test_check_shape_accepts_every_order_type() -> None:
    ok = [
        sig(order_type="market", limit_price=None),
        sig(order_type="limit"),
        sig(order_type="stop-loss", limit_price=None, trigger_price="59000"),
        sig(order_type="take-profit", limit_price=None, trigger_price="61000"),
        sig(order_type="stop-loss-limit", trigger_price="59000"),
        sig(order_type="take-profit-limit", trigger_price="61000"),
        sig(order_type="trailing-stop", limit_price=None, trigger_price="100"),
        sig(order_type="trailing-stop-limit", limit_price="50", trigger_price="100"),
    ]
    for record in ok:
        assert check_shape(Signal.from_record(record)) is None, record["order_type"]


def test_pair_rules_from_real_instrument_data(instruments: InstrumentBook) -> None:
    btc = instruments.get("BTC/USD")
    assert btc is not None
    assert btc.price_increment == Decimal("0.1") and btc.qty_increment == Decimal("1E-8")
    assert btc.qty_min == Decimal("0.0001") and btc.cost_min == Decimal("0.50")
    assert len(instruments) == 683
    assert not instruments.update({"kind": "asset", "symbol": "BTC", "status": "enabled"})


@pytest.mark.parametrize(
    ("change", "prefix"),
    [
        ({"limit_price": "60000.05"}, "precision: limit_price"),
        ({"quantity": "0.000100001"}, "precision: quantity"),
        ({"quantity": "0.00009"}, "minimum: quantity"),
        ({"quantity": "0.0001", "limit_price": "1000.0"}, "minimum: cost"),
        ({"symbol": "NOPE/USD"}, "no_instrument"),
        (
            {"order_type": "stop-loss-limit", "trigger_price": "59000.01"},
            "precision: trigger_price",
        ),
    ],
)
def test_check_instrument_rejects(instruments: InstrumentBook, change: dict[str, Any], prefix: str) -> None:
    s = Signal.from_record(sig(**change))
    reason = check_instrument(s, instruments.get(s.symbol))
    assert reason is not None and reason.startswith(prefix), reason


def test_check_instrument_accepts_exact_multiples(instruments: InstrumentBook) -> None:
    # trailing zeros beyond the precision are fine: 0.00100000 BTC at 60000.50
    s = Signal.from_record(sig(quantity="0.00100000", limit_price="60000.50"))
    assert check_instrument(s, instruments.get("BTC/USD")) is None


@pytest.mark.parametrize(
    ("status", "change", "ok"),
    [
        ("post_only", {}, False),
        ("post_only", {"post_only": True}, True),
        ("limit_only", {"order_type": "market", "limit_price": None}, False),
        ("limit_only", {}, True),
        ("reduce_only", {}, False),
        ("reduce_only", {"reduce_only": True}, True),
        ("cancel_only", {}, False),
        ("maintenance", {}, False),
    ],
)
def test_pair_status(instruments: InstrumentBook, status: str, change: dict[str, Any], ok: bool) -> None:
    base = instruments.get("BTC/USD")
    assert base is not None
    rules = PairRules(**{**{f: getattr(base, f) for f in base.__dataclass_fields__}, "status": status})
    reason = check_instrument(Signal.from_record(sig(**change)), rules)
    assert (reason is None) == ok, reason
    if not ok:
        assert reason is not None and reason.startswith("pair_status:")


# ---- ccxt mapping & client ids --------------------------------------------------------------------


def test_build_order_call_per_type() -> None:
    def call(**change: Any) -> OrderCall:
        return build_order_call(Signal.from_record(sig(**change)))

    market = call(order_type="market", limit_price=None, quantity="0.10")
    assert (market.type, market.price, market.amount) == ("market", None, "0.10")
    limit = call(post_only=True, time_in_force="gtc")
    assert (
        limit.price == "60000.5" and limit.params["postOnly"] is True and limit.params["timeInForce"] == "GTC"
    )
    sl = call(order_type="stop-loss", limit_price=None, trigger_price="59000")
    assert sl.type == "market" and sl.params["stopLossPrice"] == "59000"
    tp = call(order_type="take-profit-limit", trigger_price="61000")
    assert tp.type == "limit" and tp.price == "60000.5" and tp.params["takeProfitPrice"] == "61000"
    trail = call(order_type="trailing-stop-limit", limit_price="50", trigger_price="100")
    assert trail.price is None and trail.params["trailingAmount"] == "100"
    assert trail.params["trailingLimitAmount"] == "50"
    margin = call(order_type="stop-loss-limit", trigger_price="59000", leverage="5", reduce_only=True)
    # same param order as ccxt's static request test "Margin stopLossPrice order (type 2)"
    assert list(margin.params) == ["stopLossPrice", "leverage", "reduceOnly", "cl_ord_id"]
    gtd = call(time_in_force="GTD", valid_until=T0 + 1_999_999)
    assert gtd.params["expiretm"] == str((T0 + 1_999_999) // 1_000_000)


def test_client_ids_are_deterministic_and_kraken_shaped() -> None:
    u = str(uuid.uuid4())
    assert cl_ord_id_for(u) == u
    assert cl_ord_id_for(u.replace("-", "").upper()) == u
    other = cl_ord_id_for("strategy-a/2025-01-01/42")
    assert other == cl_ord_id_for("strategy-a/2025-01-01/42") and uuid.UUID(other).version == 5
    assert cl_ord_id_for("a") != cl_ord_id_for("b")
    ref = userref_for("strategy-a/42")
    assert 1 <= ref <= 2**31 - 1 and ref == userref_for("strategy-a/42")
    call = build_order_call(Signal.from_record(sig()), ClientIdField.USERREF)
    assert call.params["userref"] == userref_for("sig-1") and call.client_order_id == str(
        userref_for("sig-1")
    )
    assert "cl_ord_id" not in call.params  # Kraken: cl_ord_id and userref are mutually exclusive


# ---- risk -----------------------------------------------------------------------------------------


def test_allowed_symbols_and_staleness(instruments: InstrumentBook) -> None:
    limits = RiskLimits(allowed_symbols=frozenset({"ETH/USD"}), max_signal_age_us=60_000_000)
    proc = processor(instruments, limits=limits)
    out = proc.handle(sig(), T0).outcome
    assert out is not None and out["status"] == "rejected" and out["reason"].startswith("symbol_not_allowed")
    eth = dict(symbol="ETH/USD", limit_price="3000.00", quantity="0.01")
    out = proc.handle(sig(signal_id="s2", valid_until=T0 - 1, **eth), T0).outcome
    assert out is not None and out["reason"].startswith("stale: valid_until")
    out = proc.handle(sig(signal_id="s3", **eth), T0 + 61_000_000).outcome
    assert out is not None and out["reason"].startswith("stale: signal is")
    out = proc.handle(sig(signal_id="s4", valid_until=T0, **eth), T0).outcome
    assert out is not None and out["status"] == "dry-run"


def test_max_notional_uses_limit_or_last_price(instruments: InstrumentBook) -> None:
    limits = RiskLimits(max_notional=SymbolLimits.parse("BTC/USD=100,*=1000"))
    proc = processor(instruments, limits=limits)
    out = proc.handle(sig(quantity="0.0017"), T0).outcome  # 0.0017 x 60000.5 = 102.00085
    assert out is not None and out["reason"] == "max_notional: notional 102.00085 exceeds 100"
    market = dict(order_type="market", limit_price=None, quantity="0.0010")
    out = proc.handle(sig(signal_id="m1", **market), T0).outcome
    assert out is not None and out["reason"].startswith("max_notional: no reference price")
    proc.observe_price("BTC/USD", "99000.0")
    out = proc.handle(sig(signal_id="m2", **market), T0).outcome
    assert out is not None and out["status"] == "dry-run"
    proc.observe_price("BTC/USD", "100000.1")
    out = proc.handle(sig(signal_id="m3", **market), T0).outcome
    assert out is not None and out["reason"].startswith("max_notional")


def test_max_position_tracks_net_and_allows_reducing(instruments: InstrumentBook) -> None:
    proc = processor(instruments, limits=RiskLimits(max_position=SymbolLimits.parse("0.003")))
    statuses = []
    for i, (side, qty) in enumerate(
        [("buy", "0.002"), ("buy", "0.002"), ("sell", "0.004"), ("buy", "0.001")]
    ):
        out = proc.handle(sig(signal_id=f"p{i}", side=side, quantity=qty), T0).outcome
        assert out is not None
        statuses.append(out["status"])
    # 0.002 ok; +0.002 → 0.004 > 0.003 rejected; -0.004 → -0.002 ok; +0.001 → -0.001 ok
    assert statuses == ["dry-run", "rejected", "dry-run", "dry-run"]
    assert proc.risk.position("BTC/USD") == Decimal("-0.001")


def test_max_orders_per_minute_is_a_rolling_window(instruments: InstrumentBook) -> None:
    proc = processor(instruments, limits=RiskLimits(max_orders_per_minute=2))
    results = [proc.handle(sig(signal_id=f"r{i}"), T0 + i).outcome for i in range(3)]
    assert [r["status"] for r in results if r] == ["dry-run", "dry-run", "rejected"]
    assert results[2] is not None and results[2]["reason"].startswith("rate_limit")
    later = proc.handle(sig(signal_id="r9"), T0 + 60_000_001).outcome
    assert later is not None and later["status"] == "dry-run"


def test_symbol_limits_parse() -> None:
    limits = SymbolLimits.parse("BTC/USD=0.5, *=10")
    assert limits.for_symbol("BTC/USD") == Decimal("0.5") and limits.for_symbol("X/Y") == Decimal(10)
    assert SymbolLimits.parse("").for_symbol("BTC/USD") is None
    with pytest.raises(ValueError):
        SymbolLimits.parse("BTC/USD=-1")


# ---- ledger / processor ---------------------------------------------------------------------------


def test_invalid_record_goes_to_deadletter(instruments: InstrumentBook) -> None:
    handled = processor(instruments).handle({"signal_id": "x"}, T0)
    assert (
        handled.outcome is None and handled.invalid is not None and handled.invalid.startswith("not a signal")
    )


def test_dry_run_outcome_shows_what_would_be_sent(instruments: InstrumentBook) -> None:
    out = processor(instruments).handle(sig(), T0, source_partition=2, source_offset=41).outcome
    assert out is not None
    assert out["status"] == "dry-run" and out["mode"] == "dry-run" and out["attempts"] == 0
    request = json.loads(out["request"])
    assert request["method"] == "create_order" and request["amount"] == "0.0010"
    assert request["params"]["cl_ord_id"] == cl_ord_id_for("sig-1") == out["client_order_id"]
    assert (out["ts_signal"], out["ts_received"], out["ts_done"], out["ts_sent"]) == (T0, T0, T0 + 5, None)
    assert (out["source_partition"], out["source_offset"]) == (2, 41)


def test_replay_is_duplicate_across_restart(instruments: InstrumentBook) -> None:
    limits = RiskLimits(max_position=SymbolLimits.parse("0.0015"))
    first = processor(instruments, limits=limits)
    topic = [o for o in (first.handle(sig(signal_id=f"d{i}"), T0).outcome for i in range(2)) if o]
    assert [o["status"] for o in topic] == ["dry-run", "rejected"]
    again = first.handle(sig(signal_id="d0"), T0).outcome
    assert again is not None and again["status"] == "duplicate" and again["prior_status"] == "dry-run"
    topic.append(again)

    # restart: rebuild from kracked.orders; as a compacted topic keeps only the latest record per key
    compacted = list({o["signal_id"]: o for o in topic}.values())
    restarted = processor(instruments, limits=limits)
    for record in compacted:
        restarted.restore(record)
    assert len(restarted.ledger) == 2
    assert restarted.risk.position("BTC/USD") == Decimal("0.0010")  # the duplicate keeps d0's position
    for i in range(2):
        out = restarted.handle(sig(signal_id=f"d{i}"), T0).outcome
        assert out is not None and out["status"] == "duplicate"
    blocked = restarted.handle(sig(signal_id="d5"), T0).outcome
    assert blocked is not None and blocked["reason"].startswith("max_position")


def test_ledger_rejects_garbage() -> None:
    with pytest.raises(ValueError):
        OrderLedger().remember({"signal_id": "x", "status": "weird"})


class FakeGateway:
    """Records calls; answers with scripted executions / lookups."""

    def __init__(self) -> None:
        self.placed: list[tuple[OrderCall, bool]] = []
        self.looked_up: list[OrderCall] = []
        self.execution = Execution(Status.ACKNOWLEDGED, None, "OAAAAA-BBBBB-CCCCCC", 1, '{"x":1}', T0 + 1)
        self.found: FoundOrder | Exception | None = None
        self.events: list[str] = []

    def place(self, call: OrderCall, *, validate: bool) -> Execution:
        self.events.append("place")
        self.placed.append((call, validate))
        return self.execution

    def lookup(self, call: OrderCall) -> FoundOrder | None:
        self.looked_up.append(call)
        if isinstance(self.found, Exception):
            raise self.found
        return self.found


@pytest.fixture
def gateway() -> Iterator[FakeGateway]:
    yield FakeGateway()


def test_live_writes_submitted_before_sending(instruments: InstrumentBook, gateway: FakeGateway) -> None:
    proc = processor(instruments, Mode.LIVE, gateway=gateway)
    submitted: list[dict[str, Any]] = []

    def on_submitted(record: dict[str, Any]) -> None:
        gateway.events.append("submitted")
        submitted.append(record)

    out = proc.handle(sig(), T0, on_submitted=on_submitted).outcome
    assert gateway.events == ["submitted", "place"]
    assert submitted[0]["status"] == "submitted" and submitted[0]["ts_sent"] is not None
    assert (
        out is not None
        and out["status"] == "acknowledged"
        and out["exchange_order_id"] == "OAAAAA-BBBBB-CCCCCC"
    )
    assert gateway.placed[0][1] is False
    assert proc.risk.position("BTC/USD") == Decimal("0.0010")


def test_failing_write_ahead_sends_nothing(instruments: InstrumentBook, gateway: FakeGateway) -> None:
    proc = processor(instruments, Mode.LIVE, gateway=gateway)

    def broken(record: dict[str, Any]) -> None:
        raise RuntimeError("kafka down")

    with pytest.raises(RuntimeError):
        proc.handle(sig(), T0, on_submitted=broken)
    assert gateway.placed == [] and "sig-1" not in proc.ledger


def test_validate_mode_passes_validate(instruments: InstrumentBook, gateway: FakeGateway) -> None:
    proc = processor(instruments, Mode.VALIDATE, gateway=gateway)
    out = proc.handle(sig(), T0).outcome
    assert gateway.placed[0][1] is True and out is not None and out["mode"] == "validate"


def test_rejected_by_kraken_releases_position(instruments: InstrumentBook, gateway: FakeGateway) -> None:
    gateway.execution = Execution(Status.REJECTED, "kraken_rejected: InsufficientFunds: x", None, 1, "{}", T0)
    proc = processor(instruments, Mode.LIVE, gateway=gateway)
    out = proc.handle(sig(), T0).outcome
    assert out is not None and out["status"] == "rejected" and out["attempts"] == 1
    assert proc.risk.position("BTC/USD") == 0


def _pending_after_crash(instruments: InstrumentBook, gateway: FakeGateway) -> dict[str, Any]:
    """The submitted record of an order whose final outcome was never written (crash mid-call)."""
    submitted: list[dict[str, Any]] = []
    processor(instruments, Mode.LIVE, gateway=gateway).handle(sig(), T0, on_submitted=submitted.append)
    gateway.placed.clear()
    return submitted[0]


@pytest.mark.parametrize(
    ("found", "status", "reason"),
    [
        (FoundOrder("OQCLML-BW3P3-BUCMWZ", "closed", "0.0010", "60000.5"), "acknowledged", "found at Kraken"),
        (None, "failed", "not found"),
        (LookupFailed("timeout"), "failed", "unknown"),
    ],
)
def test_pending_signal_is_looked_up_never_resent(
    instruments: InstrumentBook,
    gateway: FakeGateway,
    found: FoundOrder | Exception | None,
    status: str,
    reason: str,
) -> None:
    pending = _pending_after_crash(instruments, gateway)
    gateway.found = found
    restarted = processor(instruments, Mode.LIVE, gateway=gateway)
    restarted.restore(pending)
    assert [e.signal_id for e in restarted.ledger.pending()] == ["sig-1"]
    out = restarted.handle(sig(), T0 + 10).outcome
    assert out is not None and out["status"] == status and out["reason"].startswith(reason)
    assert gateway.placed == []  # never sent twice
    assert len(gateway.looked_up) == 1 and gateway.looked_up[0].client_order_id == cl_ord_id_for("sig-1")
    if status == "acknowledged":
        assert (out["exchange_order_id"], out["filled_qty"], out["avg_price"]) == (
            "OQCLML-BW3P3-BUCMWZ",
            "0.0010",
            "60000.5",
        )
    assert restarted.ledger.pending() == []
    again = restarted.handle(sig(), T0 + 20).outcome
    assert again is not None and again["status"] == "duplicate"


def test_reconcile_pending_at_start(instruments: InstrumentBook, gateway: FakeGateway) -> None:
    pending = _pending_after_crash(instruments, gateway)
    gateway.found = FoundOrder("OQCLML-BW3P3-BUCMWZ", "open")
    restarted = processor(instruments, Mode.LIVE, gateway=gateway)
    restarted.restore(pending)
    outcomes = restarted.reconcile_pending(T0 + 10)
    assert [o["status"] for o in outcomes] == ["acknowledged"] and gateway.placed == []
    assert restarted.reconcile_pending(T0 + 11) == []


def test_dry_run_never_uses_a_gateway(instruments: InstrumentBook, gateway: FakeGateway) -> None:
    proc = processor(instruments, Mode.DRY_RUN, gateway=gateway)
    proc.handle(sig(), T0)
    assert gateway.placed == [] and gateway.looked_up == []


def test_live_needs_a_gateway(instruments: InstrumentBook) -> None:
    with pytest.raises(ValueError):
        processor(instruments, Mode.LIVE)


# ---- settings -------------------------------------------------------------------------------------

SECRET = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA=="
LIVE_ENV = {
    "KRACKED_KRAKEN_API_KEY": "my-api-key-0123456789",
    "KRACKED_KRAKEN_API_SECRET": SECRET,
    "KRACKED_ORDERS_ALLOWED_SYMBOLS": "BTC/USD,ETH/USD",
    "KRACKED_ORDERS_MAX_NOTIONAL": "1000",
}


def test_settings_default_to_dry_run() -> None:
    settings = OrdersSettings.from_env({})
    assert settings.mode is Mode.DRY_RUN and settings.rest_url == "https://api.kraken.com"
    assert settings.max_attempts == 3 and settings.allowed_symbols is None


@pytest.mark.parametrize(
    ("env", "kwargs", "message"),
    [
        (LIVE_ENV, {"mode": "live"}, "--live"),
        ({**LIVE_ENV, "KRACKED_ORDERS_MODE": "live"}, {}, "--live"),
        ({}, {"live": True}, "KRACKED_KRAKEN_API_KEY"),
        ({}, {"mode": "validate"}, "KRACKED_KRAKEN_API_KEY"),
        ({**LIVE_ENV, "KRACKED_ORDERS_ALLOWED_SYMBOLS": ""}, {"live": True}, "ALLOWED_SYMBOLS"),
        ({**LIVE_ENV, "KRACKED_ORDERS_MAX_NOTIONAL": ""}, {"live": True}, "MAX_NOTIONAL"),
        ({**LIVE_ENV, "KRACKED_KRAKEN_API_SECRET": "not base64!"}, {"live": True}, "base64"),
        (LIVE_ENV, {"mode": "validate", "live": True}, "contradicts"),
        ({"KRACKED_ORDERS_MODE": "yolo"}, {}, "dry-run, validate or live"),
        ({"KRACKED_ORDERS_DEADLINE_S": "120"}, {}, "deadline"),
        ({"KRACKED_ORDERS_MAX_NOTIONAL": "abc"}, {}, "MAX_NOTIONAL"),
    ],
)
def test_settings_config_errors(env: dict[str, str], kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        OrdersSettings.from_env(env, **kwargs)
    text = str(info.value)
    assert "\n" not in text and "not base64!" not in text and SECRET not in text


def test_live_settings_need_the_flag_and_hide_secrets() -> None:
    settings = OrdersSettings.from_env(LIVE_ENV, live=True)
    assert settings.mode is Mode.LIVE
    shown = repr(settings) + settings.describe() + "".join(settings.banner())
    assert "my-api-key-0123456789" not in shown and SECRET not in shown
    assert "LIVE TRADING" in "".join(settings.banner())
    assert settings.risk_limits().allowed_symbols == frozenset({"BTC/USD", "ETH/USD"})


def test_flags_override_env() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        ["--mode", "validate", "--retries", "0", "--max-position", "BTC/USD=1", "--deadline", "0"]
    )
    settings = OrdersSettings.from_args(args, {**LIVE_ENV, "KRACKED_ORDERS_RETRIES": "5"})
    assert settings.mode is Mode.VALIDATE and settings.max_attempts == 1 and settings.deadline_s is None
    assert settings.max_position.for_symbol("BTC/USD") == Decimal(1)
