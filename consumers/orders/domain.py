"""Pure domain of `kracked orders`: signal → checks → ccxt call → outcome record, executed at most once.

No Kafka and no network here. The exchange is reached only through the `OrderGateway` protocol (the
ccxt implementation lives in `exchange.py`), so everything below runs from a list in a unit test and
from Kafka in the service with the same code.

* `Signal.from_record` parses a decoded `kracked.signals` record into a frozen model with exact
  `Decimal`s (never floats); a record that is not a signal raises `SignalError` (→ kracked.deadletter).
* `check_shape`, `check_instrument` and `RiskBook.check` return a reason (`"<check>: <detail>"`) or
  None; a reason becomes a `rejected` outcome.
* `build_order_call` maps a signal to ccxt's `create_order(symbol, type, side, amount, price, params)`,
  amounts and prices as decimal text (ccxt accepts strings and keeps them exact).
* `OrderLedger` remembers every handled signal id, rebuilt from the `kracked.orders` records.
* `OrderProcessor` ties it together: `handle(record, now_us)` returns the outcome record.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation, localcontext
from enum import StrEnum
from typing import Any, Final, Protocol

# --------------------------------------------------------------------------------------------------
# Vocabulary


class Mode(StrEnum):
    """How far a signal goes: checked only, validated by Kraken (validate=true), or really placed."""

    DRY_RUN = "dry-run"
    VALIDATE = "validate"
    LIVE = "live"


class Status(StrEnum):
    """`status` of a kracked.orders record."""

    REJECTED = "rejected"
    DRY_RUN = "dry-run"
    SUBMITTED = "submitted"
    ACKNOWLEDGED = "acknowledged"
    FAILED = "failed"
    DUPLICATE = "duplicate"


class ClientIdField(StrEnum):
    """Which Kraken AddOrder field carries the id derived from `signal_id`.

    Kraken documents `cl_ord_id` (string: UUID or ≤ 18 chars of free text, unique among open orders)
    and `userref` (int32, not unique) as mutually exclusive, so exactly one of them is sent.
    """

    CL_ORD_ID = "cl_ord_id"
    USERREF = "userref"


SIDES: Final = frozenset({"buy", "sell"})
TIME_IN_FORCE: Final = frozenset({"GTC", "IOC", "GTD"})  # Kraken REST `timeinforce` values
MICROS_PER_MINUTE: Final = 60_000_000
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class OrderTypeSpec:
    """How one Kraken order type is expressed with ccxt's unified `create_order`.

    ccxt's kraken turns `type='market'|'limit'` plus `stopLossPrice` / `takeProfitPrice` /
    `trailingAmount` / `trailingLimitAmount` params into Kraken's `ordertype`, `price` and `price2`
    (reference §8.1: stop-loss-limit = limit + stopLossPrice → price=trigger, price2=limit).
    """

    ccxt_type: str
    needs_limit: bool
    needs_trigger: bool
    trigger_param: str | None = None
    limit_param: str | None = None  # the limit goes in params (trailing) instead of the price argument

    @property
    def relative(self) -> bool:
        """Trailing types carry offsets, not absolute prices."""
        return self.trigger_param == "trailingAmount"


ORDER_TYPES: Final[Mapping[str, OrderTypeSpec]] = {
    "market": OrderTypeSpec("market", False, False),
    "limit": OrderTypeSpec("limit", True, False),
    "stop-loss": OrderTypeSpec("market", False, True, "stopLossPrice"),
    "take-profit": OrderTypeSpec("market", False, True, "takeProfitPrice"),
    "stop-loss-limit": OrderTypeSpec("limit", True, True, "stopLossPrice"),
    "take-profit-limit": OrderTypeSpec("limit", True, True, "takeProfitPrice"),
    "trailing-stop": OrderTypeSpec("market", False, True, "trailingAmount"),
    "trailing-stop-limit": OrderTypeSpec("limit", True, True, "trailingAmount", "trailingLimitAmount"),
}


def wall_clock_us() -> int:
    return time.time_ns() // 1000


def dec_text(value: Decimal) -> str:
    """Plain decimal text (no exponent), keeping the digits given (`0.10` stays `0.10`)."""
    return format(value, "f")


# --------------------------------------------------------------------------------------------------
# Signal


class SignalError(ValueError):
    """The record is not a valid signal (missing/mistyped field, unknown value): dead-letter it."""


def _field(record: Mapping[str, Any], name: str) -> Any:
    return record.get(name)


def _req_str(record: Mapping[str, Any], name: str) -> str:
    value = _field(record, name)
    if not isinstance(value, str) or not value.strip():
        raise SignalError(f"{name}: a non-empty string is required, got {type(value).__name__}")
    return value


def _opt_str(record: Mapping[str, Any], name: str) -> str | None:
    value = _field(record, name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise SignalError(f"{name}: a string or null is required, got {type(value).__name__}")
    return value


def parse_decimal(value: object, what: str) -> Decimal:
    """Exact decimal from text (or int/Decimal); floats are refused so no binary rounding sneaks in."""
    if isinstance(value, bool | float):
        raise ValueError(f"{what}: decimal text required, got {type(value).__name__}")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"{what}: not a decimal: {value[:40]!r}") from None
    else:
        raise ValueError(f"{what}: decimal text required, got {type(value).__name__}")
    if not result.is_finite():
        raise ValueError(f"{what}: not a finite decimal: {value!r}")
    return result


def _dec(record: Mapping[str, Any], name: str, *, required: bool) -> Decimal | None:
    value = _field(record, name)
    if value is None:
        if required:
            raise SignalError(f"{name}: required")
        return None
    try:
        return parse_decimal(value, name)
    except ValueError as exc:
        raise SignalError(str(exc)) from None


def _ts(record: Mapping[str, Any], name: str, *, required: bool) -> int | None:
    """timestamp-micros as int (kracked's serde strips logical types); aware datetimes also accepted."""
    value = _field(record, name)
    if value is None:
        if required:
            raise SignalError(f"{name}: required")
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise SignalError(f"{name}: naive datetime")
        return (value - _EPOCH) // timedelta(microseconds=1)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise SignalError(f"{name}: timestamp-micros (int) required, got {type(value).__name__}")


def _bool(record: Mapping[str, Any], name: str) -> bool:
    value = _field(record, name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise SignalError(f"{name}: boolean required, got {type(value).__name__}")
    return value


@dataclass(frozen=True, slots=True)
class Signal:
    """One order intent from kracked.signals, parsed once at the edge."""

    signal_id: str
    created_at: int
    strategy: str
    symbol: str
    side: str
    order_type: str
    quantity: Decimal
    limit_price: Decimal | None = None
    trigger_price: Decimal | None = None
    time_in_force: str | None = None
    post_only: bool = False
    reduce_only: bool = False
    leverage: Decimal | None = None
    valid_until: int | None = None

    @classmethod
    def from_record(cls, record: object) -> Signal:
        """Parse a decoded `kracked.signals` record; SignalError says what is wrong."""
        if not isinstance(record, Mapping):
            raise SignalError(f"record must be a mapping, got {type(record).__name__}")
        side = _req_str(record, "side").lower()
        if side not in SIDES:
            raise SignalError(f"side: {side[:20]!r} is not buy or sell")
        order_type = _req_str(record, "order_type").lower()
        if order_type not in ORDER_TYPES:
            raise SignalError(f"order_type: {order_type[:30]!r} is not one of {', '.join(ORDER_TYPES)}")
        tif = _opt_str(record, "time_in_force")
        if tif is not None:
            tif = tif.upper()
            if tif not in TIME_IN_FORCE:
                raise SignalError(f"time_in_force: {tif[:10]!r} is not GTC, IOC or GTD")
        symbol = _req_str(record, "symbol")
        if symbol.count("/") != 1 or symbol != symbol.strip():
            raise SignalError(f"symbol: {symbol[:30]!r} is not BASE/QUOTE")
        quantity = _dec(record, "quantity", required=True)
        if quantity is None:  # unreachable: required=True raises instead
            raise SignalError("quantity: required")
        return cls(
            signal_id=_req_str(record, "signal_id"),
            created_at=_ts(record, "created_at", required=True) or 0,
            strategy=_opt_str(record, "strategy") or "",
            symbol=symbol,
            side=side,
            order_type=order_type,
            quantity=quantity,
            limit_price=_dec(record, "limit_price", required=False),
            trigger_price=_dec(record, "trigger_price", required=False),
            time_in_force=tif,
            post_only=_bool(record, "post_only"),
            reduce_only=_bool(record, "reduce_only"),
            leverage=_dec(record, "leverage", required=False),
            valid_until=_ts(record, "valid_until", required=False),
        )

    @property
    def spec(self) -> OrderTypeSpec:
        return ORDER_TYPES[self.order_type]

    @property
    def signed_quantity(self) -> Decimal:
        return self.quantity if self.side == "buy" else -self.quantity


# --------------------------------------------------------------------------------------------------
# Checks: each returns "<check>: <detail>" or None


def check_shape(sig: Signal) -> str | None:
    """The signal's fields fit its order type (Kraken would reject it otherwise)."""
    spec = sig.spec
    if sig.quantity <= 0:
        return f"invalid: quantity must be > 0, got {dec_text(sig.quantity)}"
    if spec.needs_limit and sig.limit_price is None:
        return f"invalid: limit_price is required for {sig.order_type} orders"
    if not spec.needs_limit and sig.limit_price is not None:
        return f"invalid: limit_price is not allowed for {sig.order_type} orders"
    if spec.needs_trigger and sig.trigger_price is None:
        return f"invalid: trigger_price is required for {sig.order_type} orders"
    if not spec.needs_trigger and sig.trigger_price is not None:
        return f"invalid: trigger_price is not allowed for {sig.order_type} orders"
    for name, value in (("limit_price", sig.limit_price), ("trigger_price", sig.trigger_price)):
        if value is not None and value <= 0:
            return f"invalid: {name} must be > 0, got {dec_text(value)}"
    # Kraken: oflags=post is "available when ordertype = limit".
    if sig.post_only and sig.order_type != "limit":
        return f"invalid: post_only is only allowed for limit orders, not {sig.order_type}"
    if sig.post_only and sig.time_in_force == "IOC":
        return "invalid: post_only cannot be combined with IOC"
    if sig.time_in_force == "GTD" and sig.valid_until is None:
        return "invalid: time_in_force GTD needs valid_until (the order's expiry)"
    if sig.leverage is not None and sig.leverage < 1:
        return f"invalid: leverage must be >= 1, got {dec_text(sig.leverage)}"
    return None


@dataclass(frozen=True, slots=True)
class PairRules:
    """Order rules of one pair, from a `kraken.instrument` pair record (Kraken's `pairs[]` item)."""

    symbol: str
    status: str
    price_precision: int
    qty_precision: int
    price_increment: Decimal
    qty_increment: Decimal
    qty_min: Decimal
    cost_min: Decimal | None = None

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> PairRules:
        """ValueError when a needed field is missing or is not exact decimal text."""

        def need(name: str, *fallbacks: str) -> Any:
            for key in (name, *fallbacks):
                value = record.get(key)
                if value is not None:
                    return value
            raise ValueError(f"instrument {record.get('symbol')!r}: {name} missing")

        def integer(name: str) -> int:
            value = need(name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"instrument {record.get('symbol')!r}: {name} must be an int")
            return value

        cost_min = record.get("cost_min")
        return cls(
            symbol=str(need("symbol")),
            status=str(need("status")),
            price_precision=integer("price_precision"),
            qty_precision=integer("qty_precision"),
            # tick_size is Kraken's deprecated name of price_increment
            price_increment=parse_decimal(need("price_increment", "tick_size"), "price_increment"),
            qty_increment=parse_decimal(need("qty_increment"), "qty_increment"),
            qty_min=parse_decimal(need("qty_min"), "qty_min"),
            cost_min=None if cost_min is None else parse_decimal(cost_min, "cost_min"),
        )


class InstrumentBook:
    """Latest `PairRules` per symbol, fed with kraken.instrument records (asset records are ignored)."""

    def __init__(self) -> None:
        self._pairs: dict[str, PairRules] = {}

    def update(self, record: Mapping[str, Any]) -> bool:
        """Take one pair record; False for an asset record. ValueError for a malformed pair record."""
        kind = record.get("kind")
        symbol = record.get("symbol")
        if kind not in (None, "pair") or not isinstance(symbol, str) or "/" not in symbol:
            return False
        rules = PairRules.from_record(record)
        self._pairs[rules.symbol] = rules
        return True

    def get(self, symbol: str) -> PairRules | None:
        return self._pairs.get(symbol)

    def __len__(self) -> int:
        return len(self._pairs)

    def __contains__(self, symbol: object) -> bool:
        return symbol in self._pairs


def _decimals(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def _on_grid(value: Decimal, step: Decimal) -> bool:
    if step <= 0:
        return True
    with localcontext() as ctx:
        ctx.prec = 80
        return value % step == 0


def reference_price(sig: Signal, last_price: Decimal | None) -> Decimal | None:
    """The price a signal's notional and cost are measured at.

    Absolute limit price for limit types, the trigger for triggered market types; market and
    trailing orders (whose prices are offsets) use the last known market price, if any.
    """
    spec = sig.spec
    if spec.relative or sig.order_type == "market":
        return last_price
    if spec.needs_limit:
        return sig.limit_price
    return sig.trigger_price


_LIMIT_ONLY_TYPES: Final = frozenset(t for t, s in ORDER_TYPES.items() if s.ccxt_type == "limit")


def check_instrument(sig: Signal, pair: PairRules | None, last_price: Decimal | None = None) -> str | None:
    """Pair status, precision, increments and minimums from Kraken's instrument data."""
    if pair is None:
        return f"no_instrument: no instrument data for {sig.symbol} (kraken.instrument)"
    status = pair.status
    if status == "post_only" and not sig.post_only:
        return f"pair_status: {sig.symbol} is post_only; only post-only limit orders are accepted"
    if status == "limit_only" and sig.order_type not in _LIMIT_ONLY_TYPES:
        return f"pair_status: {sig.symbol} is limit_only; {sig.order_type} orders are not accepted"
    if status == "reduce_only" and not sig.reduce_only:
        return f"pair_status: {sig.symbol} is reduce_only; only reduce-only orders are accepted"
    if status not in ("online", "post_only", "limit_only", "reduce_only"):
        return f"pair_status: {sig.symbol} is {status}; no new orders"
    qty = sig.quantity
    if _decimals(qty) > pair.qty_precision or not _on_grid(qty, pair.qty_increment):
        return (
            f"precision: quantity {dec_text(qty)} is not a multiple of qty_increment "
            f"{dec_text(pair.qty_increment)} ({pair.qty_precision} decimals max)"
        )
    for name, value in (("limit_price", sig.limit_price), ("trigger_price", sig.trigger_price)):
        if value is None:
            continue
        if _decimals(value) > pair.price_precision or not _on_grid(value, pair.price_increment):
            return (
                f"precision: {name} {dec_text(value)} is not a multiple of price_increment "
                f"{dec_text(pair.price_increment)} ({pair.price_precision} decimals max)"
            )
    if qty < pair.qty_min:
        return f"minimum: quantity {dec_text(qty)} is below qty_min {dec_text(pair.qty_min)}"
    price = reference_price(sig, last_price)
    if price is not None and pair.cost_min is not None:
        cost = _mul(qty, price)
        if cost < pair.cost_min:
            return (
                f"minimum: cost {dec_text(cost)} (quantity x price {dec_text(price)}) is below "
                f"cost_min {dec_text(pair.cost_min)}"
            )
    return None


def _mul(a: Decimal, b: Decimal) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = 80  # exact for any realistic price x quantity
        return a * b


# --------------------------------------------------------------------------------------------------
# Risk limits


@dataclass(frozen=True, slots=True)
class SymbolLimits:
    """A limit with an optional per-symbol override: parsed from `1000` or `BTC/USD=1000,*=50`."""

    default: Decimal | None = None
    per_symbol: Mapping[str, Decimal] = field(default_factory=dict)

    def for_symbol(self, symbol: str) -> Decimal | None:
        return self.per_symbol.get(symbol, self.default)

    @property
    def configured(self) -> bool:
        return self.default is not None or bool(self.per_symbol)

    @classmethod
    def parse(cls, text: str | None) -> SymbolLimits:
        """ValueError on bad text; empty/None = no limit."""
        if text is None or not text.strip():
            return cls()
        default: Decimal | None = None
        per: dict[str, Decimal] = {}
        for part in text.split(","):
            part = part.strip()
            if not part:
                continue
            name, eq, value = part.rpartition("=")
            amount = parse_decimal(value.strip(), "limit")
            if amount <= 0:
                raise ValueError(f"limit must be > 0: {part!r}")
            if not eq or name.strip() == "*":
                default = amount
            else:
                per[name.strip()] = amount
        return cls(default, per)

    def describe(self) -> str:
        parts = [f"{k}={dec_text(v)}" for k, v in sorted(self.per_symbol.items())]
        if self.default is not None:
            parts.append(f"*={dec_text(self.default)}")
        return ",".join(parts) or "none"


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """Configurable pre-trade limits (None/empty = no limit)."""

    allowed_symbols: frozenset[str] | None = None
    max_notional: SymbolLimits = field(default_factory=SymbolLimits)
    max_position: SymbolLimits = field(default_factory=SymbolLimits)
    max_orders_per_minute: int | None = None
    max_signal_age_us: int | None = None


class RiskBook:
    """Risk state: net position per symbol from orders sent (as if filled) and recent order times."""

    def __init__(self, limits: RiskLimits) -> None:
        self.limits = limits
        self.positions: dict[str, Decimal] = {}
        self._sent: list[int] = []  # sorted; only the newest `max_orders_per_minute` are kept

    def position(self, symbol: str) -> Decimal:
        return self.positions.get(symbol, Decimal(0))

    def check_signal(self, sig: Signal, now_us: int) -> str | None:
        """Symbol allow-list and staleness (no instrument data needed)."""
        limits = self.limits
        if limits.allowed_symbols is not None and sig.symbol not in limits.allowed_symbols:
            return f"symbol_not_allowed: {sig.symbol} is not in the allowed symbols"
        if sig.valid_until is not None and now_us > sig.valid_until:
            late_ms = (now_us - sig.valid_until) // 1000
            return f"stale: valid_until passed {late_ms} ms before the signal was handled"
        if limits.max_signal_age_us is not None and now_us - sig.created_at > limits.max_signal_age_us:
            age_s = (now_us - sig.created_at) / 1e6
            return f"stale: signal is {age_s:.3f} s old (max {limits.max_signal_age_us / 1e6:g} s)"
        return None

    def check_exposure(self, sig: Signal, now_us: int, price: Decimal | None) -> str | None:
        """Max notional per order, max position per symbol, max orders per minute."""
        limits = self.limits
        max_notional = limits.max_notional.for_symbol(sig.symbol)
        if max_notional is not None:
            if price is None:
                return f"max_notional: no reference price for {sig.symbol} to check the notional"
            notional = _mul(sig.quantity, price)
            if notional > max_notional:
                return f"max_notional: notional {dec_text(notional)} exceeds {dec_text(max_notional)}"
        max_position = limits.max_position.for_symbol(sig.symbol)
        if max_position is not None:
            current = self.position(sig.symbol)
            after = current + sig.signed_quantity
            # An order that brings the position closer to zero is always allowed.
            if abs(after) > max_position and abs(after) > abs(current):
                return (
                    f"max_position: position {dec_text(current)} would become {dec_text(after)} "
                    f"(limit {dec_text(max_position)})"
                )
        per_minute = limits.max_orders_per_minute
        if per_minute is not None:
            recent = len(self._sent) - bisect.bisect_right(self._sent, now_us - MICROS_PER_MINUTE)
            if recent >= per_minute:
                return f"rate_limit: {recent} orders in the last minute (max {per_minute})"
        return None

    def add_position(self, symbol: str, delta: Decimal) -> None:
        self.positions[symbol] = self.position(symbol) + delta

    def add_sent(self, ts_us: int) -> None:
        bisect.insort(self._sent, ts_us)
        keep = self.limits.max_orders_per_minute
        if keep is not None and len(self._sent) > keep:
            del self._sent[: len(self._sent) - keep]
        elif keep is None and len(self._sent) > 1000:
            del self._sent[:-1000]


# --------------------------------------------------------------------------------------------------
# Client order ids and the ccxt call

# Fixed namespace: the same signal_id always gives the same cl_ord_id, across restarts and hosts.
KRACKED_NAMESPACE: Final = uuid.UUID("6f0b0a4e-6b1d-5d0c-9a55-6b7261636b65")
_LONG_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_SHORT_UUID = re.compile(r"[0-9a-fA-F]{32}")


def cl_ord_id_for(signal_id: str) -> str:
    """Kraken `cl_ord_id` for a signal: a long UUID (one of the formats Kraken accepts).

    A signal_id that already is a UUID (long, or 32 hex digits) is used as is (canonical form);
    any other id is mapped with uuid5, so arbitrary ids never hit Kraken's 18-character free-text limit.
    """
    if _LONG_UUID.fullmatch(signal_id) or _SHORT_UUID.fullmatch(signal_id):
        return str(uuid.UUID(signal_id))
    return str(uuid.uuid5(KRACKED_NAMESPACE, signal_id))


def userref_for(signal_id: str) -> int:
    """Kraken `userref` for a signal: a positive int32 (1..2**31-1) from SHA-256 of the id."""
    value = int.from_bytes(hashlib.sha256(signal_id.encode()).digest()[:4], "big") & 0x7FFFFFFF
    return value or 1


def client_order_id_for(signal_id: str, field: ClientIdField) -> str:
    """The client id text written in kracked.orders (`userref` as decimal text)."""
    if field is ClientIdField.USERREF:
        return str(userref_for(signal_id))
    return cl_ord_id_for(signal_id)


@dataclass(frozen=True, slots=True)
class OrderCall:
    """ccxt `create_order(symbol, type, side, amount, price, params)` for one signal (decimals as text)."""

    symbol: str
    type: str
    side: str
    amount: str
    price: str | None
    params: Mapping[str, Any]
    client_id_field: ClientIdField
    client_order_id: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "method": "create_order",
            "symbol": self.symbol,
            "type": self.type,
            "side": self.side,
            "amount": self.amount,
            "price": self.price,
            "params": dict(self.params),
        }

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), separators=(",", ":"))


def build_order_call(sig: Signal, client_id_field: ClientIdField = ClientIdField.CL_ORD_ID) -> OrderCall:
    """Map a (shape-checked) signal to ccxt's kraken `create_order` arguments.

    Param order is chosen so that the AddOrder body starts exactly like ccxt's own static request
    tests (reference §8.1); the client id is appended as a plain Kraken field (not ccxt's
    `clientOrderId`, which ccxt would insert before `price`).
    """
    spec = sig.spec
    params: dict[str, Any] = {}
    if spec.trigger_param is not None and sig.trigger_price is not None:
        params[spec.trigger_param] = dec_text(sig.trigger_price)
    if spec.limit_param is not None and sig.limit_price is not None:
        params[spec.limit_param] = dec_text(sig.limit_price)
    price = None
    if spec.needs_limit and spec.limit_param is None and sig.limit_price is not None:
        price = dec_text(sig.limit_price)
    if sig.leverage is not None:
        params["leverage"] = dec_text(sig.leverage)
    if sig.reduce_only:
        params["reduceOnly"] = True
    if sig.post_only:
        params["postOnly"] = True
    if sig.time_in_force is not None:
        params["timeInForce"] = sig.time_in_force
        if sig.time_in_force == "GTD" and sig.valid_until is not None:
            # Kraken `expiretm`: unix seconds; truncated so the order never outlives the signal.
            params["expiretm"] = str(sig.valid_until // 1_000_000)
    if client_id_field is ClientIdField.USERREF:
        params["userref"] = userref_for(sig.signal_id)
    else:
        params["cl_ord_id"] = cl_ord_id_for(sig.signal_id)
    return OrderCall(
        symbol=sig.symbol,
        type=spec.ccxt_type,
        side=sig.side,
        amount=dec_text(sig.quantity),
        price=price,
        params=params,
        client_id_field=client_id_field,
        client_order_id=client_order_id_for(sig.signal_id, client_id_field),
    )


# --------------------------------------------------------------------------------------------------
# The exchange side, as the domain sees it


@dataclass(frozen=True, slots=True)
class Execution:
    """What the gateway made of one `place` call (after its own bounded retries and lookups)."""

    status: Status  # ACKNOWLEDGED, REJECTED or FAILED
    reason: str | None = None
    exchange_order_id: str | None = None
    attempts: int = 0
    request: str | None = None  # JSON: the call and the exact AddOrder body (no secrets)
    ts_sent: int | None = None
    filled_qty: str | None = None
    avg_price: str | None = None


@dataclass(frozen=True, slots=True)
class FoundOrder:
    """An order found at Kraken by its client id."""

    exchange_order_id: str
    status: str  # Kraken's: pending, open, closed, canceled, expired
    filled_qty: str | None = None
    avg_price: str | None = None


class LookupFailed(Exception):
    """The exchange could not be asked (network); whether the order exists is unknown."""


class OrderGateway(Protocol):
    """The exchange: `exchange.KrakenGateway` in the service, a fake in unit tests."""

    def place(self, call: OrderCall, *, validate: bool) -> Execution:
        """Send the order once (retrying only when that cannot duplicate it); never raises."""
        ...

    def lookup(self, call: OrderCall) -> FoundOrder | None:
        """The order with `call`'s client id at Kraken, or None; LookupFailed when unknown."""
        ...


# --------------------------------------------------------------------------------------------------
# Ledger: which signal ids were handled


_COUNTED: Final = frozenset({Status.DRY_RUN, Status.SUBMITTED, Status.ACKNOWLEDGED})


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """What is known about one handled signal id (from its latest kracked.orders record)."""

    signal_id: str
    status: Status
    mode: str
    symbol: str
    side: str
    quantity: Decimal
    client_order_id: str
    exchange_order_id: str | None
    ts_sent: int | None
    ts_received: int
    ts_done: int
    prior_status: Status | None = None
    record: Mapping[str, Any] | None = None  # kept only while pending (needed to reconcile)

    @property
    def effective_status(self) -> Status:
        """For a duplicate record: the status of the first handling."""
        if self.status is Status.DUPLICATE and self.prior_status is not None:
            return self.prior_status
        return self.status

    @property
    def pending(self) -> bool:
        """Sent (or about to be) but no final outcome recorded: must be looked up, never resent."""
        return self.effective_status is Status.SUBMITTED

    @property
    def signed_quantity(self) -> Decimal:
        return self.quantity if self.side == "buy" else -self.quantity


class OrderLedger:
    """Every signal id already handled, rebuilt from kracked.orders (compacted, keyed by signal_id)."""

    def __init__(self) -> None:
        self._entries: dict[str, LedgerEntry] = {}

    @staticmethod
    def entry_from_record(record: Mapping[str, Any]) -> LedgerEntry:
        """ValueError for a record that is not an OrderOutcome."""
        try:
            status = Status(record["status"])
            prior = record.get("prior_status")
            entry = LedgerEntry(
                signal_id=str(record["signal_id"]),
                status=status,
                mode=str(record["mode"]),
                symbol=str(record["symbol"]),
                side=str(record["side"]),
                quantity=parse_decimal(record["quantity"], "quantity"),
                client_order_id=str(record.get("client_order_id") or ""),
                exchange_order_id=record.get("exchange_order_id"),
                ts_sent=record.get("ts_sent"),
                ts_received=int(record.get("ts_received") or 0),
                ts_done=int(record.get("ts_done") or 0),
                prior_status=Status(prior) if prior else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not an OrderOutcome record: {exc}") from None
        if entry.pending:
            entry = _with_record(entry, dict(record))
        return entry

    def remember(self, record: Mapping[str, Any]) -> tuple[LedgerEntry | None, LedgerEntry]:
        """Apply one kracked.orders record; returns (previous entry, current entry).

        Later records supersede earlier ones (submitted → acknowledged), except that a `duplicate`
        never replaces what is known about the first handling.
        """
        entry = self.entry_from_record(record)
        previous = self._entries.get(entry.signal_id)
        if entry.status is Status.DUPLICATE and previous is not None:
            return previous, previous
        self._entries[entry.signal_id] = entry
        return previous, entry

    def get(self, signal_id: str) -> LedgerEntry | None:
        return self._entries.get(signal_id)

    def pending(self) -> list[LedgerEntry]:
        return [e for e in self._entries.values() if e.pending]

    def __contains__(self, signal_id: object) -> bool:
        return signal_id in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[LedgerEntry]:
        return iter(list(self._entries.values()))


def _with_record(entry: LedgerEntry, record: Mapping[str, Any]) -> LedgerEntry:
    return replace(entry, record=record)


# --------------------------------------------------------------------------------------------------
# The processor


@dataclass(frozen=True, slots=True)
class Handled:
    """Result of `OrderProcessor.handle`: exactly one of the two is set."""

    outcome: dict[str, Any] | None = None  # → kracked.orders, key = outcome["signal_id"]
    invalid: str | None = None  # → kracked.deadletter (stage "process"), the record is not a signal


@dataclass(frozen=True, slots=True)
class _Source:
    ts_received: int
    partition: int | None
    offset: int | None


def outcome_record(
    sig: Signal,
    *,
    status: Status,
    mode: Mode | str,
    client_order_id: str,
    source: _Source,
    ts_done: int,
    reason: str | None = None,
    request: str | None = None,
    attempts: int = 0,
    ts_sent: int | None = None,
    exchange_order_id: str | None = None,
    filled_qty: str | None = None,
    avg_price: str | None = None,
    prior_status: Status | None = None,
) -> dict[str, Any]:
    """A `kracked.orders` (OrderOutcome) record: every field of the schema, ints for timestamps."""
    return {
        "signal_id": sig.signal_id,
        "strategy": sig.strategy,
        "symbol": sig.symbol,
        "side": sig.side,
        "order_type": sig.order_type,
        "quantity": dec_text(sig.quantity),
        "limit_price": None if sig.limit_price is None else dec_text(sig.limit_price),
        "trigger_price": None if sig.trigger_price is None else dec_text(sig.trigger_price),
        "status": str(status),
        "reason": reason,
        "mode": str(mode),
        "exchange_order_id": exchange_order_id,
        "client_order_id": client_order_id,
        "request": request,
        "attempts": attempts,
        "ts_signal": sig.created_at,
        "ts_received": source.ts_received,
        "ts_sent": ts_sent,
        "ts_done": ts_done,
        "source_partition": source.partition,
        "source_offset": source.offset,
        "filled_qty": filled_qty,
        "avg_price": avg_price,
        "prior_status": None if prior_status is None else str(prior_status),
    }


class OrderProcessor:
    """Signal record in, OrderOutcome record out; at most one order per signal_id.

    Feed it first with the existing kracked.orders records (`restore`), kraken.instrument pair records
    (`observe_instrument`) and, for market/trailing orders under a notional limit, last prices
    (`observe_price`); then call `handle` for each kracked.signals record.
    """

    def __init__(
        self,
        *,
        mode: Mode,
        limits: RiskLimits,
        gateway: OrderGateway | None = None,
        ledger: OrderLedger | None = None,
        instruments: InstrumentBook | None = None,
        client_id_field: ClientIdField = ClientIdField.CL_ORD_ID,
        clock: Callable[[], int] = wall_clock_us,
    ) -> None:
        if mode is not Mode.DRY_RUN and gateway is None:
            raise ValueError(f"mode {mode} needs an exchange gateway")
        self.mode = mode
        self.gateway = gateway if mode is not Mode.DRY_RUN else None  # dry-run never calls anything
        self.ledger = ledger if ledger is not None else OrderLedger()
        self.instruments = instruments if instruments is not None else InstrumentBook()
        self.risk = RiskBook(limits)
        self.client_id_field = client_id_field
        self.clock = clock
        self._last_price: dict[str, Decimal] = {}
        for entry in self.ledger:
            self._account(None, entry)

    # ---- inputs besides signals ----------------------------------------------------------------
    def observe_instrument(self, record: Mapping[str, Any]) -> bool:
        """A kraken.instrument record; True when it was a pair record (ValueError if malformed)."""
        return self.instruments.update(record)

    def observe_price(self, symbol: str, price: str | Decimal) -> None:
        """Last market price of `symbol` (exact text), for market/trailing notional and cost checks."""
        self._last_price[symbol] = parse_decimal(price, "price")

    def restore(self, record: Mapping[str, Any]) -> None:
        """One kracked.orders record read back at start (ValueError if it is not an OrderOutcome)."""
        self._remember(record)

    # ---- signals -------------------------------------------------------------------------------
    def handle(
        self,
        record: Mapping[str, Any],
        now_us: int,
        *,
        source_partition: int | None = None,
        source_offset: int | None = None,
        on_submitted: Callable[[dict[str, Any]], None] | None = None,
    ) -> Handled:
        """Decide and (in validate/live) execute one signal; returns the outcome to publish.

        In validate/live, `on_submitted(record)` receives the `submitted` record before the HTTP call;
        the service should make it durable there (write-ahead), so that a crash during the call
        leaves a pending entry that is looked up on restart instead of being sent again. If it
        raises, nothing is sent and the exception propagates.
        """
        try:
            sig = Signal.from_record(record)
        except SignalError as exc:
            return Handled(invalid=f"not a signal: {exc}")
        source = _Source(now_us, source_partition, source_offset)
        client_id = client_order_id_for(sig.signal_id, self.client_id_field)
        entry = self.ledger.get(sig.signal_id)
        if entry is not None:
            if entry.pending and self.gateway is not None:
                reconciled = self._reconcile(self.gateway, entry, sig, source, complete=True)
                return Handled(outcome=self._finish(reconciled))
            return Handled(outcome=self._finish(self._duplicate(sig, entry, source)))

        reason = check_shape(sig) or self.risk.check_signal(sig, now_us)
        if reason is None:
            last = self._last_price.get(sig.symbol)
            reason = check_instrument(sig, self.instruments.get(sig.symbol), last)
            if reason is None:
                reason = self.risk.check_exposure(sig, now_us, reference_price(sig, last))
        if reason is not None:
            rejected = outcome_record(
                sig,
                status=Status.REJECTED,
                mode=self.mode,
                client_order_id=client_id,
                source=source,
                ts_done=self.clock(),
                reason=reason,
            )
            return Handled(outcome=self._finish(rejected))

        call = build_order_call(sig, self.client_id_field)
        if self.gateway is None:
            dry = outcome_record(
                sig,
                status=Status.DRY_RUN,
                mode=self.mode,
                client_order_id=client_id,
                source=source,
                ts_done=self.clock(),
                request=call.to_json(),
            )
            return Handled(outcome=self._finish(dry))
        return Handled(outcome=self._finish(self._execute(self.gateway, sig, call, source, on_submitted)))

    def reconcile_pending(self, now_us: int) -> list[dict[str, Any]]:
        """Final outcomes for every pending (`submitted`) entry, looked up at Kraken; call after restore."""
        gateway = self.gateway
        if gateway is None:
            return []
        outcomes = []
        for entry in self.ledger.pending():
            record = entry.record or {}
            try:
                sig = _signal_from_outcome(record)
            except SignalError:
                continue
            source = _Source(now_us, record.get("source_partition"), record.get("source_offset"))
            outcomes.append(self._finish(self._reconcile(gateway, entry, sig, source, complete=False)))
        return outcomes

    # ---- internals -----------------------------------------------------------------------------
    def _execute(
        self,
        gateway: OrderGateway,
        sig: Signal,
        call: OrderCall,
        source: _Source,
        on_submitted: Callable[[dict[str, Any]], None] | None,
    ) -> dict[str, Any]:
        ts_sent = self.clock()
        submitted = outcome_record(
            sig,
            status=Status.SUBMITTED,
            mode=self.mode,
            client_order_id=call.client_order_id,
            source=source,
            ts_done=ts_sent,
            request=call.to_json(),
            ts_sent=ts_sent,
        )
        if on_submitted is not None:
            on_submitted(dict(submitted))
        self._remember(submitted)
        execution = gateway.place(call, validate=self.mode is Mode.VALIDATE)
        return outcome_record(
            sig,
            status=execution.status,
            mode=self.mode,
            client_order_id=call.client_order_id,
            source=source,
            ts_done=self.clock(),
            reason=execution.reason,
            request=execution.request or call.to_json(),
            attempts=execution.attempts,
            ts_sent=(execution.ts_sent or ts_sent) if execution.attempts else None,
            exchange_order_id=execution.exchange_order_id,
            filled_qty=execution.filled_qty,
            avg_price=execution.avg_price,
        )

    def _reconcile(
        self, gateway: OrderGateway, entry: LedgerEntry, sig: Signal, source: _Source, *, complete: bool
    ) -> dict[str, Any]:
        """A signal whose order was sent but whose outcome was never recorded (crash mid-call).

        Live: look the order up by its client id and never send it again (at most once). Validate:
        validate=true never creates an order, so it is validated again when the full signal is at
        hand (`complete`), else reported failed.
        """
        record = entry.record or {}
        field_ = ClientIdField.USERREF if entry.client_order_id.isdigit() else ClientIdField.CL_ORD_ID
        call = build_order_call(sig, field_)
        common: dict[str, Any] = {
            "mode": entry.mode,
            "client_order_id": entry.client_order_id,
            "source": source,
            "ts_sent": entry.ts_sent,
        }
        request = record.get("request")
        if entry.mode == Mode.VALIDATE:
            if not complete:
                return outcome_record(
                    sig,
                    status=Status.FAILED,
                    ts_done=self.clock(),
                    reason="interrupted: validate request cut short by a restart; not repeated",
                    request=request,
                    **common,
                )
            execution = gateway.place(call, validate=True)
            return outcome_record(
                sig,
                status=execution.status,
                ts_done=self.clock(),
                reason=execution.reason,
                attempts=execution.attempts,
                request=execution.request or request,
                **common,
            )
        try:
            found = gateway.lookup(call)
        except LookupFailed as exc:
            return outcome_record(
                sig,
                status=Status.FAILED,
                ts_done=self.clock(),
                reason=f"unknown: order sent before a restart and Kraken could not be asked ({exc}); "
                "not resent",
                request=request,
                **common,
            )
        if found is None:
            return outcome_record(
                sig,
                status=Status.FAILED,
                ts_done=self.clock(),
                reason=f"not found: no order with client id {entry.client_order_id} at Kraken after a "
                "restart; not resent (at most once)",
                request=request,
                **common,
            )
        return outcome_record(
            sig,
            status=Status.ACKNOWLEDGED,
            ts_done=self.clock(),
            reason=f"found at Kraken after a restart (status {found.status})",
            request=request,
            exchange_order_id=found.exchange_order_id,
            filled_qty=found.filled_qty,
            avg_price=found.avg_price,
            **common,
        )

    def _duplicate(self, sig: Signal, entry: LedgerEntry, source: _Source) -> dict[str, Any]:
        prior = entry.effective_status
        return outcome_record(
            sig,
            status=Status.DUPLICATE,
            mode=entry.mode,  # the mode of the first handling, so a compacted topic keeps it
            client_order_id=entry.client_order_id,
            source=source,
            ts_done=self.clock(),
            reason=f"duplicate: signal_id already handled ({prior} in {entry.mode} mode); nothing sent",
            exchange_order_id=entry.exchange_order_id,
            prior_status=prior,
        )

    def _finish(self, record: dict[str, Any]) -> dict[str, Any]:
        self._remember(record)
        return record

    def _remember(self, record: Mapping[str, Any]) -> None:
        previous, current = self.ledger.remember(record)
        if current is not previous:
            self._account(previous, current)

    def _account(self, previous: LedgerEntry | None, current: LedgerEntry) -> None:
        """Keep positions and the order-rate window in step with the ledger (also on restore)."""
        was = previous is not None and self._counts(previous)
        now = self._counts(current)
        if was and previous is not None:
            self.risk.add_position(previous.symbol, -previous.signed_quantity)
        if now:
            self.risk.add_position(current.symbol, current.signed_quantity)
            if not was:
                # the time the order went (or, in dry-run, would have gone) out
                self.risk.add_sent(current.ts_sent or current.ts_received)

    def _counts(self, entry: LedgerEntry) -> bool:
        return entry.mode == self.mode and entry.effective_status in _COUNTED


def _signal_from_outcome(record: Mapping[str, Any]) -> Signal:
    """The signal fields an outcome record carries (enough to rebuild the order call)."""
    return Signal(
        signal_id=str(record.get("signal_id")),
        created_at=int(record.get("ts_signal") or 0),
        strategy=str(record.get("strategy") or ""),
        symbol=str(record.get("symbol")),
        side=str(record.get("side")),
        order_type=str(record.get("order_type")),
        quantity=_dec(record, "quantity", required=True) or Decimal(0),
        limit_price=_dec(record, "limit_price", required=False),
        trigger_price=_dec(record, "trigger_price", required=False),
    )
