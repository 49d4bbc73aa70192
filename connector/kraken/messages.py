"""Kraken WebSocket v2 frames → frozen typed models (the only parser of Kraken's wire text).

`parse(raw)` decodes one frame and returns one model; anything that does not have the documented shape
raises `ParseError` (the caller dead-letters the raw frame and goes on). Numbers are never floats
(reference §1.2): JSON decimals are decoded with `parse_float=str`, so a price keeps Kraken's exact text
(`45281.0`, `0.10000000`, `1e-08`); a decimal Kraken happens to send as a JSON integer (`"qty": 500`)
becomes its text `"500"`. Integers that are integers by nature (trade_id, checksum, sequence,
connection_id, which can exceed int64) stay Python ints.

The hot channels (book, level3, trade, ticker, ohlc) get fixed models built with plain tuples: these
run for every frame. The channels Kraken extends most (instrument, status, executions, balances) keep
each item as a mapping whose JSON numbers are `Num` (exact token text, `str` subclass), so the mapping
can carry unknown fields as their JSON text instead of dropping them; they are rare, so they are
decoded a second time with the `Num` decoder.

Dispatch follows reference §1.3: a frame with `method` is a response to a request (`pong` for ping); a
frame with `channel` is stream data; `heartbeat` has neither `type` nor `data`.
"""

from __future__ import annotations

import calendar
import json
import json.scanner
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple, TypedDict

# --------------------------------------------------------------------------------------------- errors


class ParseError(ValueError):
    """A frame that is not valid JSON or does not have the documented shape; `channel` if known."""

    def __init__(self, reason: str, channel: str | None = None) -> None:
        super().__init__(reason)
        self.channel = channel


# --------------------------------------------------------------------------------------------- numbers


class Num(str):
    """A JSON number kept as its original token text (only used for the extensible channels)."""

    __slots__ = ()


# The C scanner of the stdlib decoder, called directly: JSONDecoder.decode adds two Python calls and a
# regex per frame, which is measurable at tens of thousands of frames per second.
_scan_fast = json.scanner.make_scanner(json.JSONDecoder(parse_float=str))  # type: ignore[arg-type]
_decode_exact = json.JSONDecoder(parse_float=Num, parse_int=Num).decode


def decimal_text(value: Any) -> str:
    """Kraken decimal → its exact text: str (from `parse_float=str`) as is, JSON int → str(int).

    bool is rejected although it is an int subclass; so are None and containers.
    """
    cls = value.__class__
    if cls is str or cls is Num:
        return str(value)
    if cls is int:
        return str(value)
    raise ParseError(f"expected a number, got {type(value).__name__} {value!r}")


def integer(value: Any) -> int:
    """A JSON integer (trade_id, checksum...): int as is, `Num`/str of digits converted, else ParseError."""
    cls = value.__class__
    if cls is int:
        return int(value)
    if cls is Num or cls is str:
        text = str(value)
        if text.lstrip("-").isdigit():
            return int(text)
    raise ParseError(f"expected an integer, got {type(value).__name__} {value!r}")


# --------------------------------------------------------------------------------------------- time

_SECONDS: dict[str, int] = {}
_RECENT: dict[str, int] = {}


def ts_micros(text: str) -> int:
    """RFC3339 UTC text → microseconds since the epoch (ns fractions truncated; missing `Z` = UTC).

    Kraken writes 0-9 fractional digits (reference §1.1, §9.9). Results are cached: one market event
    carries the same timestamp on book, ticker, trade and ohlc, and consecutive messages share the
    seconds prefix, which keeps this off the profile of the hot path.
    """
    hit = _RECENT.get(text)
    if hit is not None:
        return hit
    if text.__class__ is not str:
        raise ParseError(f"timestamp {text!r} is not a string")
    if len(_RECENT) >= 4096:
        _RECENT.clear()
    value = _RECENT[text] = _ts_micros(text)
    return value


def _ts_micros(text: str) -> int:
    head = text[:19]
    sec = _SECONDS.get(head)
    if sec is None:
        try:
            dt = datetime.fromisoformat(head)
        except ValueError:
            raise ParseError(f"bad timestamp {text!r}") from None
        if len(head) != 19 or dt.tzinfo is not None:
            return _ts_slow(text)
        if len(_SECONDS) >= 4096:
            _SECONDS.clear()
        sec = _SECONDS[head] = calendar.timegm(dt.timetuple())
    rest = text[19:]
    if rest == "Z" or rest == "":
        return sec * 1_000_000
    if rest[0] == "." and rest[-1] == "Z":
        frac = rest[1:-1]
        if frac.isdigit():
            return sec * 1_000_000 + int(frac[:6].ljust(6, "0"))
    return _ts_slow(text)


def _ts_slow(text: str) -> int:
    """Offsets (`+00:00`) and other legal RFC3339 spellings, through datetime."""
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise ParseError(f"bad timestamp {text!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    delta = dt - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def opt_ts(value: Any) -> int | None:
    return None if value is None else ts_micros(value)


# --------------------------------------------------------------------------------------------- models


class Level(TypedDict):
    """One L2 level as decoded (`{"price": ..., "qty": ...}`), values normalised to exact decimal text.

    The decoded dicts are kept (not copied into tuples): the integrity check reads them and the Avro
    writer writes them as `Level` records directly, which saves two allocations per level.
    """

    price: str
    qty: str


class L3Order(NamedTuple):
    order_id: str
    limit_price: str
    order_qty: str
    event: str | None  # add / modify / delete on updates, None on snapshots
    timestamp: str | None


class BookMessage(NamedTuple):
    """One `book` message: always exactly one symbol (reference §2.2)."""

    symbol: str
    type: str
    bids: Sequence[Level]
    asks: Sequence[Level]
    checksum: int
    timestamp: str | None


class Level3Message(NamedTuple):
    symbol: str
    type: str
    bids: tuple[L3Order, ...]
    asks: tuple[L3Order, ...]
    checksum: int
    timestamp: str | None


class Trade(NamedTuple):
    symbol: str
    side: str
    price: str
    qty: str
    ord_type: str
    trade_id: int
    timestamp: str


class TradeMessage(NamedTuple):
    """A batch of trades; each carries its own symbol (reference §5.6)."""

    type: str
    trades: tuple[Trade, ...]


class TickerMessage(NamedTuple):
    type: str
    symbol: str
    bid: str
    bid_qty: str
    ask: str
    ask_qty: str
    last: str
    volume: str
    vwap: str
    low: str
    high: str
    change: str
    change_pct: str
    timestamp: str | None


class Candle(NamedTuple):
    symbol: str
    open: str
    high: str
    low: str
    close: str
    vwap: str
    volume: str
    trades: int
    interval_begin: str
    interval: int
    timestamp: str | None  # deprecated per-candle timestamp (the interval end in practice)


class OhlcMessage(NamedTuple):
    type: str
    candles: tuple[Candle, ...]
    timestamp: str | None  # message-level timestamp (reference §2.3)


class InstrumentMessage(NamedTuple):
    """Reference data; items keep every field (numbers as `Num`)."""

    type: str
    assets: tuple[Mapping[str, Any], ...]
    pairs: tuple[Mapping[str, Any], ...]


class StatusMessage(NamedTuple):
    type: str
    item: Mapping[str, Any]  # system, api_version, connection_id (u64), version, + anything new

    @property
    def system(self) -> str:
        return str(self.item.get("system"))


class ExecutionsMessage(NamedTuple):
    type: str
    sequence: int | None
    reports: tuple[Mapping[str, Any], ...]


class BalancesMessage(NamedTuple):
    type: str
    sequence: int | None
    items: tuple[Mapping[str, Any], ...]


class Heartbeat(NamedTuple):
    pass


class Pong(NamedTuple):
    req_id: int | None
    time_in: str | None
    time_out: str | None


class Ack(NamedTuple):
    """Response to subscribe/unsubscribe (or any other method): one per symbol (reference §1.4, §1.5)."""

    method: str
    success: bool
    req_id: int | None
    error: str | None
    symbol: str | None  # `result.symbol` on success, top-level `symbol` on failure
    channel: str | None
    result: Mapping[str, Any]
    time_in: str | None
    time_out: str | None


DataMessage = (
    BookMessage
    | Level3Message
    | TradeMessage
    | TickerMessage
    | OhlcMessage
    | InstrumentMessage
    | StatusMessage
    | ExecutionsMessage
    | BalancesMessage
)
Message = DataMessage | Heartbeat | Pong | Ack

HEARTBEAT = Heartbeat()

# --------------------------------------------------------------------------------------------- parsing


def _text(raw: str | bytes) -> str:
    return raw if isinstance(raw, str) else bytes(raw).decode("utf-8")


def decode(raw: str | bytes) -> dict[str, Any]:
    """JSON object of a frame (decimals as text); ParseError for anything else."""
    try:
        text = raw if raw.__class__ is str else _text(raw)
    except UnicodeDecodeError as exc:
        raise ParseError(f"frame is not UTF-8: {exc}") from None
    try:
        obj, end = _scan_fast(text, 0)
    except StopIteration:
        obj, end, text = _decode_slow(text)
    except ValueError as exc:
        raise ParseError(f"invalid JSON: {exc}") from None
    if end != len(text) and text[end:].strip():
        raise ParseError(f"invalid JSON: extra data at offset {end}")
    if not isinstance(obj, dict):
        raise ParseError(f"frame is a JSON {type(obj).__name__}, not an object")
    return obj


def _decode_slow(text: str) -> tuple[Any, int, str]:
    """The scanner found no value at offset 0: leading whitespace (legal JSON) or garbage."""
    stripped = text.lstrip()
    if stripped and stripped is not text:
        try:
            obj, end = _scan_fast(stripped, 0)
            return obj, end, stripped
        except (StopIteration, ValueError):
            pass
    raise ParseError("invalid JSON: no value at the start of the frame")


def parse(raw: str | bytes) -> Message:
    """One WebSocket text frame → one model (ParseError when it does not have the documented shape)."""
    obj = decode(raw)
    parser = _CHANNEL_PARSERS.get(obj.get("channel"))  # type: ignore[arg-type]
    if parser is not None:  # the hot path: a data frame of a known channel
        try:
            return parser(obj, raw)
        except ParseError as exc:
            exc.channel = obj["channel"]
            raise
        except (KeyError, TypeError, AttributeError, IndexError, ValueError) as exc:
            channel = obj["channel"]
            raise ParseError(f"{channel}: malformed {type(exc).__name__}: {exc}", channel) from None
    return parse_obj(obj, raw)


def parse_obj(obj: dict[str, Any], raw: str | bytes = "") -> Message:
    channel = obj.get("channel")
    if channel is not None:
        parser = _CHANNEL_PARSERS.get(channel)
        if parser is None:
            raise ParseError(f"unknown channel {channel!r}", str(channel))
        try:
            return parser(obj, raw)
        except ParseError as exc:
            exc.channel = channel
            raise
        except (KeyError, TypeError, AttributeError, IndexError, ValueError) as exc:
            raise ParseError(f"{channel}: malformed {type(exc).__name__}: {exc}", channel) from None
    method = obj.get("method")
    if method is not None:
        try:
            return _response(obj)
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise ParseError(f"malformed {method} response: {type(exc).__name__}: {exc}") from None
    raise ParseError("frame has neither `channel` nor `method`")


def _response(obj: dict[str, Any]) -> Message:
    method = obj["method"]
    req_id = obj.get("req_id")
    if req_id is not None:
        req_id = integer(req_id)
    if method == "pong":
        return Pong(req_id, obj.get("time_in"), obj.get("time_out"))
    result = obj.get("result")
    if not isinstance(result, dict):
        result = {}
    success = obj.get("success")
    if not isinstance(success, bool):
        raise ParseError(f"{method} response without boolean `success`")
    symbol = result.get("symbol", obj.get("symbol"))
    channel = result.get("channel", obj.get("channel"))
    error = obj.get("error")
    return Ack(
        str(method),
        success,
        req_id,
        None if error is None else str(error),
        None if symbol is None else str(symbol),
        None if channel is None else str(channel),
        result,
        obj.get("time_in"),
        obj.get("time_out"),
    )


def _type(obj: Mapping[str, Any]) -> str:
    kind: str = obj["type"]
    if kind == "update" or kind == "snapshot":
        return kind
    raise ParseError(f"type {kind!r} is neither snapshot nor update")


def _only(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    data = obj["data"]
    if data.__class__ is not list or len(data) != 1 or data[0].__class__ is not dict:
        raise ParseError("`data` must hold exactly one object")
    item: Mapping[str, Any] = data[0]
    return item


def _levels(side: Any) -> Sequence[Level]:
    if not side:
        return ()
    if side.__class__ is not list:
        raise ParseError("book side is not a list")
    for lv in side:
        # a decimal Kraken sends as a JSON integer becomes its text, in the decoded dict itself
        if lv["price"].__class__ is not str:
            lv["price"] = decimal_text(lv["price"])
        if lv["qty"].__class__ is not str:
            lv["qty"] = decimal_text(lv["qty"])
    return side


_new = tuple.__new__  # builds a NamedTuple without its Python-level __new__ (hot path)


def _book(obj: dict[str, Any], raw: str | bytes) -> BookMessage:
    # the most frequent Kraken message: the checks of _only/_type/_levels are inlined
    data = obj["data"]
    if data.__class__ is not list or len(data) != 1 or data[0].__class__ is not dict:
        raise ParseError("`data` must hold exactly one object")
    d = data[0]
    kind = obj["type"]
    if kind != "update" and kind != "snapshot":
        raise ParseError(f"type {kind!r} is neither snapshot nor update")
    cs = d["checksum"]
    if cs.__class__ is not int:
        cs = integer(cs)
    symbol = d["symbol"]
    if symbol.__class__ is not str:
        raise ParseError("symbol is not a string")
    ts = d.get("timestamp")
    if ts is not None and ts.__class__ is not str:
        raise ParseError("timestamp is not a string")
    bids = d.get("bids")
    asks = d.get("asks")
    return _new(
        BookMessage,
        (symbol, kind, _levels(bids) if bids else (), _levels(asks) if asks else (), cs, ts),
    )


def _orders(side: Any) -> tuple[L3Order, ...]:
    if side is None:
        return ()
    out = []
    for o in side:
        oid = o["order_id"]
        if oid.__class__ is not str:
            raise ParseError("order_id is not a string")
        ev = o.get("event")
        ts = o.get("timestamp")
        out.append(
            L3Order(
                oid,
                decimal_text(o["limit_price"]),
                decimal_text(o["order_qty"]),
                None if ev is None else str(ev),
                None if ts is None else str(ts),
            )
        )
    return tuple(out)


def _level3(obj: dict[str, Any], raw: str | bytes) -> Level3Message:
    d = _only(obj)
    ts = d.get("timestamp")
    return Level3Message(
        str(d["symbol"]),
        _type(obj),
        _orders(d.get("bids")),
        _orders(d.get("asks")),
        integer(d["checksum"]),
        None if ts is None else str(ts),
    )


def _trade(obj: dict[str, Any], raw: str | bytes) -> TradeMessage:
    kind = _type(obj)
    data = obj["data"]
    if data.__class__ is not list:
        raise ParseError("`data` is not a list")
    trades = []
    for t in data:
        p = t["price"]
        q = t["qty"]
        tid = t["trade_id"]
        ts = t["timestamp"]
        if p.__class__ is not str:
            p = decimal_text(p)
        if q.__class__ is not str:
            q = decimal_text(q)
        if tid.__class__ is not int:
            tid = integer(tid)
        if ts.__class__ is not str:
            raise ParseError("trade timestamp is not a string")
        trades.append(_new(Trade, (str(t["symbol"]), str(t["side"]), p, q, str(t["ord_type"]), tid, ts)))
    return TradeMessage(kind, tuple(trades))


_TICKER_DECIMALS = (
    "bid",
    "bid_qty",
    "ask",
    "ask_qty",
    "last",
    "volume",
    "vwap",
    "low",
    "high",
    "change",
    "change_pct",
)


def _ticker(obj: dict[str, Any], raw: str | bytes) -> TickerMessage:
    d = _only(obj)
    values = [d[k] for k in _TICKER_DECIMALS]
    for i, v in enumerate(values):
        if v.__class__ is not str:
            values[i] = decimal_text(v)
    ts = d.get("timestamp")
    symbol = d["symbol"]
    if symbol.__class__ is not str:
        raise ParseError("symbol is not a string")
    return TickerMessage(_type(obj), symbol, *values, None if ts is None else str(ts))  # type: ignore[call-arg]


_CANDLE_DECIMALS = ("open", "high", "low", "close", "vwap", "volume")


def _ohlc(obj: dict[str, Any], raw: str | bytes) -> OhlcMessage:
    kind = _type(obj)
    data = obj["data"]
    if data.__class__ is not list:
        raise ParseError("`data` is not a list")
    candles = []
    for c in data:
        values = [c[k] for k in _CANDLE_DECIMALS]
        for i, v in enumerate(values):
            if v.__class__ is not str:
                values[i] = decimal_text(v)
        trades = c["trades"]
        interval = c["interval"]
        begin = c["interval_begin"]
        ts = c.get("timestamp")
        if begin.__class__ is not str or (ts is not None and ts.__class__ is not str):
            raise ParseError("candle timestamps must be strings")
        candles.append(
            Candle(
                str(c["symbol"]),
                *values,
                # the docs type `trades` as float although every example is an integer (reference §2.3)
                trades if trades.__class__ is int else _count(trades),
                begin,
                interval if interval.__class__ is int else integer(interval),
                ts,
            )  # type: ignore[call-arg]
        )
    ts = obj.get("timestamp")
    return OhlcMessage(kind, tuple(candles), None if ts is None else str(ts))


def _count(value: Any) -> int:
    if value.__class__ is int:
        return int(value)
    text = decimal_text(value)
    whole, _, frac = text.partition(".")
    if whole.isdigit() and (not frac or not frac.strip("0")):
        return int(whole)
    raise ParseError(f"trade count {value!r} is not a whole number")


def _exact(raw: str | bytes) -> dict[str, Any]:
    """Decode again keeping every number's token (`Num`): for the low-rate extensible channels."""
    obj: dict[str, Any] = _decode_exact(_text(raw))
    return obj


def _items(data: Any, what: str) -> tuple[Mapping[str, Any], ...]:
    if data.__class__ is not list or any(item.__class__ is not dict for item in data):
        raise ParseError(f"{what} must be a list of objects")
    return tuple(data)


def _instrument(obj: dict[str, Any], raw: str | bytes) -> InstrumentMessage:
    obj = _exact(raw) if raw else obj
    data = obj["data"]
    if data.__class__ is not dict:
        raise ParseError("instrument `data` is not an object")
    return InstrumentMessage(
        _type(obj), _items(data.get("assets", []), "assets"), _items(data.get("pairs", []), "pairs")
    )


def _status(obj: dict[str, Any], raw: str | bytes) -> StatusMessage:
    obj = _exact(raw) if raw else obj
    item = _only(obj)
    if "system" not in item:
        raise ParseError("status without `system`")
    kind = obj.get("type", "update")
    return StatusMessage(str(kind), item)


def _sequence(obj: Mapping[str, Any]) -> int | None:
    seq = obj.get("sequence")
    return None if seq is None else integer(seq)


def _executions(obj: dict[str, Any], raw: str | bytes) -> ExecutionsMessage:
    obj = _exact(raw) if raw else obj
    return ExecutionsMessage(_type(obj), _sequence(obj), _items(obj["data"], "executions data"))


def _balances(obj: dict[str, Any], raw: str | bytes) -> BalancesMessage:
    obj = _exact(raw) if raw else obj
    return BalancesMessage(_type(obj), _sequence(obj), _items(obj["data"], "balances data"))


def _heartbeat(obj: dict[str, Any], raw: str | bytes) -> Heartbeat:
    return HEARTBEAT


_CHANNEL_PARSERS: dict[str, Any] = {
    "book": _book,
    "level3": _level3,
    "trade": _trade,
    "ticker": _ticker,
    "ohlc": _ohlc,
    "instrument": _instrument,
    "status": _status,
    "executions": _executions,
    "balances": _balances,
    "heartbeat": _heartbeat,
}

# --------------------------------------------------------------------------------------------- requests


def request(method: str, params: Mapping[str, Any] | None, req_id: int) -> str:
    """Text of a client request (reference §1.3); `req_id` stays within int32 (ccxt's note, §1.2)."""
    body: dict[str, Any] = {"method": method, "req_id": req_id}
    if params is not None:
        body["params"] = dict(params)
    return json.dumps(body, separators=(",", ":"))
