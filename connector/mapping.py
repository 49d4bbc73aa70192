"""Kraken models → Avro-ready records (pure: no I/O, no clock, no Kafka).

Every function returns plain dicts shaped exactly as the `.avsc` of the target topic (tests encode
them with fastavro against the real files). Decimal fields carry Kraken's text unchanged, times are
int microseconds (`ts_event` from Kraken's `timestamp`, `ts_recv` given by the caller), and keys
follow DESIGN §3.3: symbol, `order_id` for executions, `asset` for balances, `source` for dead
letters, symbol or channel for continuity.

Book and level3 records take the integrity verdict (epoch, checksum_ok) and the pair's precision
from the caller (`connector.integrity`), so this module stays a pure translation.

The channels Kraken extends most (instrument, status, executions, balances) are mapped from the
schema itself: each field of the `.avsc` is filled from the Kraken field of the same name with a
conversion chosen by its Avro type (decimal text, int, bool, timestamp, nested record, array), and
every field Kraken sent that the schema does not name goes to `extra` as its JSON text, so a new
Kraken field is never dropped.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from functools import cache
from typing import Any, NamedTuple

from connector.integrity import Precision, Verdict
from connector.kraken.messages import (
    BalancesMessage,
    BookMessage,
    ExecutionsMessage,
    InstrumentMessage,
    Level3Message,
    Num,
    OhlcMessage,
    ParseError,
    StatusMessage,
    TickerMessage,
    Trade,
    TradeMessage,
    decimal_text,
    integer,
    opt_ts,
    ts_micros,
)
from schemas.serde import load_schema_text
from schemas.topics import Topic


class MapError(ValueError):
    """A well-formed frame whose content does not fit the record (missing required field, bad value)."""


class Out(NamedTuple):
    topic: Topic
    key: str
    record: dict[str, Any]


# --------------------------------------------------------------------------------------------- hot channels


def book_record(
    msg: BookMessage, depth: int, verdict: Verdict, ts_recv: int, precision: Precision | None = None
) -> dict[str, Any]:
    p = precision or verdict.precision
    ts = msg.timestamp
    return {
        "symbol": msg.symbol,
        "type": msg.type,
        "bids": msg.bids,  # the decoded {price, qty} dicts are Level records already
        "asks": msg.asks,
        "checksum": msg.checksum,
        "price_precision": p.price,
        "qty_precision": p.qty,
        "depth": depth,
        "epoch": verdict.epoch,
        "checksum_ok": verdict.ok,
        "ts_event": None if ts is None else ts_micros(ts),
        "ts_recv": ts_recv,
    }


def level3_record(msg: Level3Message, depth: int, verdict: Verdict, ts_recv: int) -> dict[str, Any]:
    p = verdict.precision
    ts = msg.timestamp
    return {
        "symbol": msg.symbol,
        "type": msg.type,
        "bids": [_l3_order(o) for o in msg.bids],
        "asks": [_l3_order(o) for o in msg.asks],
        "checksum": msg.checksum,
        "price_precision": p.price,
        "qty_precision": p.qty,
        "depth": depth,
        "epoch": verdict.epoch,
        "checksum_ok": verdict.ok,
        "ts_event": None if ts is None else ts_micros(ts),
        "ts_recv": ts_recv,
    }


def _l3_order(o: tuple[str, str, str, str | None, str | None]) -> dict[str, Any]:
    return {
        "order_id": o[0],
        "limit_price": o[1],
        "order_qty": o[2],
        "event": o[3],
        "timestamp": None if o[4] is None else ts_micros(o[4]),
    }


def trade_record(trade: Trade, kind: str, ts_recv: int) -> dict[str, Any]:
    return {
        "symbol": trade.symbol,
        "type": kind,
        "side": trade.side,
        "price": trade.price,
        "qty": trade.qty,
        "ord_type": trade.ord_type,
        "trade_id": trade.trade_id,
        "ts_event": ts_micros(trade.timestamp),
        "ts_recv": ts_recv,
    }


def trade_records(msg: TradeMessage, ts_recv: int) -> list[Out]:
    return [Out(Topic.TRADE, t.symbol, trade_record(t, msg.type, ts_recv)) for t in msg.trades]


def ticker_record(msg: TickerMessage, event_trigger: str | None, ts_recv: int) -> dict[str, Any]:
    ts = msg.timestamp
    return {
        "symbol": msg.symbol,
        "type": msg.type,
        "bid": msg.bid,
        "bid_qty": msg.bid_qty,
        "ask": msg.ask,
        "ask_qty": msg.ask_qty,
        "last": msg.last,
        "volume": msg.volume,
        "vwap": msg.vwap,
        "low": msg.low,
        "high": msg.high,
        "change": msg.change,
        "change_pct": msg.change_pct,
        "event_trigger": event_trigger,
        "ts_event": None if ts is None else ts_micros(ts),
        "ts_recv": ts_recv,
    }


def ohlc_records(msg: OhlcMessage, ts_recv: int) -> list[Out]:
    ts_event = opt_ts(msg.timestamp)
    out = []
    for c in msg.candles:
        out.append(
            Out(
                Topic.OHLC,
                c.symbol,
                {
                    "symbol": c.symbol,
                    "type": msg.type,
                    "open": c.open,
                    "high": c.high,
                    "low": c.low,
                    "close": c.close,
                    "vwap": c.vwap,
                    "volume": c.volume,
                    "trades": c.trades,
                    "interval_begin": ts_micros(c.interval_begin),
                    "interval": c.interval,
                    "ts_event": ts_event,
                    "ts_recv": ts_recv,
                    "timestamp": opt_ts(c.timestamp),
                },
            )
        )
    return out


# --------------------------------------------------------------------------------------------- extensible channels


def json_text(value: Any) -> str:
    """A decoded JSON value back to compact JSON text; `Num` tokens come back exactly as received."""
    if isinstance(value, Num):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{json_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(json_text(v) for v in value) + "]"
    return json.dumps(value, separators=(",", ":"))


Conv = Callable[[Any], Any]


def _text(value: Any) -> str:
    if value.__class__ is str or isinstance(value, Num):
        return str(value)
    if isinstance(value, bool) or value is None or isinstance(value, dict | list):
        raise MapError(f"expected text, got {json_text(value)}")
    return str(value)


def _decimal(value: Any) -> str:
    try:
        return decimal_text(value)
    except ParseError as exc:
        raise MapError(str(exc)) from None


def _int(value: Any) -> int:
    try:
        return integer(value)
    except ParseError as exc:
        raise MapError(str(exc)) from None


def _bool(value: Any) -> bool:
    if value is True or value is False:
        return bool(value)
    raise MapError(f"expected a boolean, got {value!r}")


def _timestamp(value: Any) -> int:
    try:
        return ts_micros(str(value) if isinstance(value, Num) else value)
    except ParseError as exc:
        raise MapError(str(exc)) from None


class _Field(NamedTuple):
    name: str  # Avro field name
    source: str  # Kraken field name
    conv: Conv
    nullable: bool


class _RecordMap(NamedTuple):
    fields: tuple[_Field, ...]
    extra: bool  # has an `extra` map for unknown fields


def _unwrap(avro_type: Any) -> tuple[Any, bool]:
    if isinstance(avro_type, list):
        others = [t for t in avro_type if t != "null"]
        return others[0], len(others) != len(avro_type)
    return avro_type, False


def _conv(avro_type: Any, decimal: bool, named: dict[str, Any]) -> Conv:
    if isinstance(avro_type, str) and avro_type in named:
        avro_type = named[avro_type]
    if isinstance(avro_type, dict):
        kind = avro_type["type"]
        if kind == "record":
            named[avro_type["name"]] = avro_type
            sub = _record_map(avro_type, {}, named)
            return lambda value: _fill(sub, value, {})[0]
        if kind == "array":
            item_conv = _conv(avro_type["items"], False, named)

            def array(value: Any) -> list[Any]:
                if not isinstance(value, list):
                    raise MapError(f"expected a list, got {json_text(value)}")
                return [item_conv(v) for v in value]

            return array
        if avro_type.get("logicalType") in ("timestamp-micros", "timestamp-millis"):
            return _timestamp
        return _conv(kind, decimal, named)
    if avro_type == "string":
        return _decimal if decimal else _text
    if avro_type in ("int", "long"):
        return _int
    if avro_type == "boolean":
        return _bool
    raise ValueError(f"no mapping for Avro type {avro_type!r}")


def _record_map(schema: Mapping[str, Any], renames: Mapping[str, str], named: dict[str, Any]) -> _RecordMap:
    fields = []
    extra = False
    for f in schema["fields"]:
        if f["name"] == "extra":
            extra = True
            continue
        avro_type, nullable = _unwrap(f["type"])
        conv = _conv(avro_type, bool(f.get("kracked.decimal")), named)
        fields.append(_Field(f["name"], renames.get(f["name"], f["name"]), conv, nullable))
    return _RecordMap(tuple(fields), extra)


def _fill(
    rmap: _RecordMap, item: Mapping[str, Any], given: Mapping[str, Any]
) -> tuple[dict[str, Any], set[str]]:
    if not isinstance(item, dict):
        raise MapError(f"expected an object, got {json_text(item)}")
    record: dict[str, Any] = {}
    used: set[str] = set()
    for f in rmap.fields:
        if f.name in given:
            record[f.name] = given[f.name]
            used.add(f.source)
            continue
        value = item.get(f.source)
        used.add(f.source)
        if value is None:
            if not f.nullable:
                raise MapError(f"required field {f.source!r} missing")
            record[f.name] = None
            continue
        try:
            record[f.name] = f.conv(value)
        except MapError as exc:
            raise MapError(f"{f.source}: {exc}") from None
    if rmap.extra:
        unknown = {k: json_text(v) for k, v in item.items() if k not in used}
        record["extra"] = unknown or None
    return record, used


# topic -> Avro field renamed from Kraken's name (DESIGN: `timestamp` -> `ts_event`, ledger `type`)
_RENAMES: dict[Topic, dict[str, str]] = {
    Topic.INSTRUMENT: {"ts_event": "timestamp"},
    Topic.STATUS: {"ts_event": "timestamp"},
    Topic.EXECUTIONS: {"ts_event": "timestamp"},
    Topic.BALANCES: {"ts_event": "timestamp", "ledger_type": "type"},
}


@cache
def _schema_map(topic: Topic) -> _RecordMap:
    schema = json.loads(load_schema_text(topic))
    return _record_map(schema, _RENAMES.get(topic, {}), {})


def instrument_records(msg: InstrumentMessage, ts_recv: int) -> list[Out]:
    rmap = _schema_map(Topic.INSTRUMENT)
    out = []
    for kind, items in (("asset", msg.assets), ("pair", msg.pairs)):
        for item in items:
            key_field = "id" if kind == "asset" else "symbol"
            key = item.get(key_field)
            if not isinstance(key, str) or not key:
                raise MapError(f"instrument {kind} without `{key_field}`")
            given = {"symbol": key, "kind": kind, "type": msg.type, "ts_recv": ts_recv}
            record, _ = _fill(rmap, item, given)
            out.append(Out(Topic.INSTRUMENT, key, record))
    return out


def status_record(msg: StatusMessage, ts_recv: int) -> dict[str, Any]:
    record, _ = _fill(_schema_map(Topic.STATUS), msg.item, {"type": msg.type, "ts_recv": ts_recv})
    return record


def execution_records(msg: ExecutionsMessage, ts_recv: int) -> list[Out]:
    rmap = _schema_map(Topic.EXECUTIONS)
    given = {"type": msg.type, "sequence": msg.sequence, "ts_recv": ts_recv}
    out = []
    for item in msg.reports:
        record, _ = _fill(rmap, item, given)
        out.append(Out(Topic.EXECUTIONS, record["order_id"], record))
    return out


def balance_records(msg: BalancesMessage, ts_recv: int) -> list[Out]:
    rmap = _schema_map(Topic.BALANCES)
    given = {"type": msg.type, "sequence": msg.sequence, "ts_recv": ts_recv}
    out = []
    for item in msg.items:
        record, _ = _fill(rmap, item, given)
        out.append(Out(Topic.BALANCES, record["asset"], record))
    return out


# --------------------------------------------------------------------------------------------- kracked records


def continuity_record(
    event: str,
    source: str,
    ts: int,
    detail: str,
    channel: str | None = None,
    symbol: str | None = None,
    gap_start: int | None = None,
    gap_end: int | None = None,
    expected: int | None = None,
    received: int | None = None,
    epoch: int | None = None,
) -> Out:
    record = {
        "event": event,
        "source": source,
        "channel": channel,
        "symbol": symbol,
        "gap_start": gap_start,
        "gap_end": gap_end,
        "expected": expected,
        "received": received,
        "epoch": epoch,
        "detail": detail,
        "ts": ts,
    }
    return Out(Topic.CONTINUITY, symbol or channel or source, record)


def deadletter_record(
    source: str, stage: str, error: str, raw: bytes, ts: int, channel: str | None = None
) -> Out:
    record = {
        "source": source,
        "stage": stage,
        "error": error,
        "raw": raw,
        "channel": channel,
        "origin_topic": None,
        "origin_partition": None,
        "origin_offset": None,
        "ts": ts,
    }
    return Out(Topic.DEADLETTER, source, record)


# --------------------------------------------------------------------------------------------- dispatcher


def map_message(
    msg: Any,
    ts_recv: int,
    *,
    book_depth: int = 10,
    level3_depth: int = 10,
    verdict: Verdict | None = None,
    event_trigger: str | None = None,
) -> list[Out]:
    """Any data model → its records (convenience for tests and tools; the connector's hot path calls
    the per-channel functions directly). Book and level3 need the integrity verdict."""
    if isinstance(msg, BookMessage):
        if verdict is None:
            raise ValueError("book records need an integrity verdict")
        return [Out(Topic.BOOK, msg.symbol, book_record(msg, book_depth, verdict, ts_recv))]
    if isinstance(msg, Level3Message):
        if verdict is None:
            raise ValueError("level3 records need an integrity verdict")
        return [Out(Topic.LEVEL3, msg.symbol, level3_record(msg, level3_depth, verdict, ts_recv))]
    if isinstance(msg, TradeMessage):
        return trade_records(msg, ts_recv)
    if isinstance(msg, TickerMessage):
        return [Out(Topic.TICKER, msg.symbol, ticker_record(msg, event_trigger, ts_recv))]
    if isinstance(msg, OhlcMessage):
        return ohlc_records(msg, ts_recv)
    if isinstance(msg, InstrumentMessage):
        return instrument_records(msg, ts_recv)
    if isinstance(msg, StatusMessage):
        return [Out(Topic.STATUS, "status", status_record(msg, ts_recv))]
    if isinstance(msg, ExecutionsMessage):
        return execution_records(msg, ts_recv)
    if isinstance(msg, BalancesMessage):
        return balance_records(msg, ts_recv)
    raise ValueError(f"no records for {type(msg).__name__}")


def precisions_from(pairs: Iterable[Mapping[str, Any]]) -> dict[str, Precision]:
    """symbol → Precision from instrument `pairs` items (reference §2.5: use them for checksums)."""
    out = {}
    for pair in pairs:
        symbol = pair.get("symbol")
        pp, qp = pair.get("price_precision"), pair.get("qty_precision")
        if isinstance(symbol, str) and pp is not None and qp is not None:
            try:
                out[symbol] = Precision(integer(pp), integer(qp))
            except ParseError:
                continue
    return out
