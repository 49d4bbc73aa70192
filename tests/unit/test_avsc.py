"""The `.avsc` files in `schemas/avro/`: one per topic, parseable, documented, and true to the conventions
of `schemas/README.md` (exact decimals as strings with `kracked.decimal`, no floats, timestamp-micros,
nullable fields `["null", X]` with default null), the record shapes other components code against, and
lossless for what Kraken actually sends (official doc examples and the real instrument capture).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import fastavro
import pytest

from schemas.checksum import l2_checksum, l3_checksum, to_fixed
from schemas.topics import Topic, schema_dir
from tests.conftest import KRAKEN_CAPTURES

Schema = dict[str, Any]

OTHER_OWNERS = {Topic.SIGNALS, Topic.ORDERS}  # written by another component; checked when present
PRESENT = [t for t in Topic if (schema_dir() / t.schema_file).exists()]

RECORD_NAMES = {
    Topic.TICKER: "Ticker",
    Topic.BOOK: "Book",
    Topic.TRADE: "Trade",
    Topic.OHLC: "Ohlc",
    Topic.INSTRUMENT: "Instrument",
    Topic.STATUS: "Status",
    Topic.LEVEL3: "Level3",
    Topic.EXECUTIONS: "Execution",
    Topic.BALANCES: "Balance",
    Topic.CONTINUITY: "Continuity",
    Topic.DEADLETTER: "DeadLetter",
    Topic.BOOK_TOP: "BookTop",
    Topic.BARS: "Bar",
    Topic.SPREAD: "Spread",
}

# Field names that carry money or quantities anywhere in kracked: they must be exact decimal strings.
MONEY_NAMES = {
    "price", "qty", "bid", "ask", "bid_qty", "ask_qty", "last", "volume", "vwap", "low", "high", "open",
    "close", "change", "change_pct", "min", "max", "twa", "balance", "amount", "fee", "cost", "qty_min",
    "cost_min", "tick_size", "price_increment", "qty_increment", "collateral_value", "margin_rate",
    "multiplier", "margin_initial", "fee_usd_equiv", "cum_qty", "cum_cost", "avg_price", "display_qty",
    "display_qty_remain", "buy_volume", "sell_volume",
}  # fmt: skip
MONEY_SUFFIXES = ("_price", "_qty", "_volume", "_bps", "_cost")
TIME_NAMES = {"ts", "start", "end", "timestamp", "interval_begin", "gap_start", "gap_end"}
TIME_NAMES |= {"effective_time", "expire_time"}

# The shapes fixed by the design: other components code against them (extra optional fields allowed).
# Codes: str/int/long/bool/bytes, dec = decimal string, ts = timestamp-micros, o* = nullable, levels = Level[]
FIXED: dict[Topic, str] = {
    Topic.BOOK: "symbol:str type:str bids:levels asks:levels checksum:long price_precision:int "
    "qty_precision:int depth:int epoch:long checksum_ok:obool ts_event:ots ts_recv:ts",
    Topic.LEVEL3: "symbol:str type:str bids:l3 asks:l3 checksum:long price_precision:int qty_precision:int "
    "depth:int epoch:long checksum_ok:obool ts_event:ots ts_recv:ts",
    Topic.TRADE: "symbol:str type:str side:str price:dec qty:dec ord_type:str trade_id:long ts_event:ts "
    "ts_recv:ts",
    Topic.TICKER: "symbol:str type:str bid:dec bid_qty:dec ask:dec ask_qty:dec last:dec volume:dec vwap:dec "
    "low:dec high:dec change:dec change_pct:dec event_trigger:ostr ts_event:ots ts_recv:ts",
    Topic.OHLC: "symbol:str type:str open:dec high:dec low:dec close:dec vwap:dec volume:dec trades:long "
    "interval_begin:ts interval:int ts_event:ots ts_recv:ts",
    Topic.CONTINUITY: "event:str source:str channel:ostr symbol:ostr gap_start:ots gap_end:ots expected:olong "
    "received:olong epoch:olong detail:str ts:ts",
    Topic.DEADLETTER: "source:str stage:str error:str raw:bytes channel:ostr origin_topic:ostr "
    "origin_partition:oint origin_offset:olong ts:ts",
    Topic.BOOK_TOP: "symbol:str kind:str depth:int bids:levels asks:levels checksum:long checksum_ok:bool "
    "valid:bool epoch:long price_precision:int qty_precision:int ts_event:ots ts_recv:ots ts:ts "
    "source_topic:str source_partition:int source_offset:long",
    Topic.BARS: "symbol:str interval_s:int start:ts end:ts open:dec high:dec low:dec close:dec volume:dec "
    "buy_volume:dec sell_volume:dec vwap:odec trade_count:long first_trade_id:olong last_trade_id:olong "
    "source_partition:oint first_offset:olong last_offset:olong ts:ts",
    Topic.SPREAD: "symbol:str interval_s:int start:ts end:ts source:str open:dec close:dec min:dec max:dec "
    "twa:dec open_bps:dec close_bps:dec min_bps:dec max_bps:dec twa_bps:dec sample_count:long ts:ts",
}

TS = 1_696_613_755_440_295  # 2023-10-06T17:35:55.440295Z in microseconds


# ---------------------------------------------------------------------------------------------- helpers


def load(topic: Topic) -> Schema:
    schema: Schema = json.loads((schema_dir() / topic.schema_file).read_text(encoding="utf-8"))
    return schema


def records(node: Any) -> Iterator[Schema]:
    """Every record definition inside a schema (the top one included)."""
    if isinstance(node, list):
        for item in node:
            yield from records(item)
    elif isinstance(node, dict):
        if node.get("type") == "record":
            yield node
            for field in node["fields"]:
                yield from records(field["type"])
        else:
            for key in ("items", "values"):
                if key in node:
                    yield from records(node[key])


def fields(schema: Schema) -> Iterator[Schema]:
    for rec in records(schema):
        yield from rec["fields"]


def type_nodes(node: Any) -> Iterator[Any]:
    """Every type expression (names, dicts, unions) inside a schema."""
    yield node
    if isinstance(node, list):
        for item in node:
            yield from type_nodes(item)
    elif isinstance(node, dict):
        if node.get("type") == "record":
            for field in node["fields"]:
                yield from type_nodes(field["type"])
        else:
            for key in ("items", "values"):
                if key in node:
                    yield from type_nodes(node[key])


def non_null(field_type: Any) -> Any:
    """The value type of a `["null", X]` union, or the type itself."""
    if isinstance(field_type, list):
        return next(t for t in field_type if t != "null")
    return field_type


def is_money(name: str) -> bool:
    return name in MONEY_NAMES or name.endswith(MONEY_SUFFIXES)


def is_ts_micros(field_type: Any) -> bool:
    t = non_null(field_type)
    return isinstance(t, dict) and t.get("type") == "long" and t.get("logicalType") == "timestamp-micros"


def code_of(field: Schema) -> str:
    """The FIXED code of a field's type (see FIXED)."""
    t = field["type"]
    nullable = isinstance(t, list)
    inner = non_null(t)
    if is_ts_micros(inner):
        code = "ts"
    elif inner == "string" and field.get("kracked.decimal") is True:
        code = "dec"
    elif isinstance(inner, str):
        code = {"string": "str", "boolean": "bool"}.get(inner, inner)
    elif inner.get("type") == "array":
        items = inner["items"]
        name = items if isinstance(items, str) else items["name"]
        code = {"Level": "levels", "L3Order": "l3"}.get(name, f"array<{name}>")
    else:
        code = json.dumps(inner)
    return ("o" + code) if nullable else code


def strip_logical(node: Any) -> Any:
    """The schema without logical types, to read timestamps back as the ints that were written."""
    if isinstance(node, list):
        return [strip_logical(n) for n in node]
    if isinstance(node, dict):
        return {k: strip_logical(v) for k, v in node.items() if k != "logicalType"}
    return node


def roundtrip(topic: Topic, record: dict[str, Any]) -> dict[str, Any]:
    schema = load(topic)
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(schema), record)
    buf.seek(0)
    result = fastavro.schemaless_reader(buf, fastavro.parse_schema(strip_logical(schema)), None)
    assert isinstance(result, dict)
    return result


def complete(topic: Topic, record: dict[str, Any]) -> dict[str, Any]:
    """`record` with every omitted optional field at its default (what a reader returns)."""
    return {f["name"]: record.get(f["name"], f.get("default")) for f in load(topic)["fields"]}


def micros(rfc3339: str) -> int:
    """Kraken RFC3339 (up to nanoseconds) → microseconds since the epoch, truncated."""
    dt = datetime.fromisoformat(rfc3339.replace("Z", "+00:00"))
    return int(dt.timestamp()) * 1_000_000 + dt.microsecond


def exact(raw: str) -> Any:
    """JSON parse that keeps every number as its text (the only way to keep Kraken's decimals exact)."""
    return json.loads(raw, parse_float=str, parse_int=str)


def coerce(value: Any, field: Schema) -> Any:
    """A Kraken value (numbers as text) into the field's Avro value: the generic mapping of the tests."""
    if value is None:
        return None
    t = non_null(field["type"])
    if is_ts_micros(t):
        return micros(value)
    if t in ("int", "long"):
        return int(value)
    if isinstance(t, dict) and t.get("type") == "array":
        return [coerce_record(v, t["items"]) for v in value]
    if isinstance(t, dict) and t.get("type") == "record":
        return coerce_record(value, t)
    return value


def coerce_record(item: dict[str, Any], rec: Schema, renames: dict[str, str] | None = None) -> dict[str, Any]:
    names = {f["name"]: f for f in rec["fields"]}
    out: dict[str, Any] = {}
    for key, value in item.items():
        name = (renames or {}).get(key, key)
        assert name in names, f"Kraken field {key!r} has no field in {rec['name']}"
        out[name] = coerce(value, names[name])
    return out


# ---------------------------------------------------------------------------------------------- files


@pytest.mark.parametrize("topic", list(Topic), ids=str)
def test_every_topic_has_its_schema_file(topic: Topic) -> None:
    path = schema_dir() / topic.schema_file
    if topic in OTHER_OWNERS and not path.exists():
        pytest.skip(f"{path.name} is written by another component")
    assert path.is_file(), f"missing {path}"


def test_no_schema_file_without_a_topic() -> None:
    names = {t.schema_file for t in Topic}
    stray = [p.name for p in Path(schema_dir()).glob("*.avsc") if p.name not in names]
    assert stray == []


@pytest.mark.parametrize("topic", PRESENT, ids=str)
def test_parses_with_fastavro(topic: Topic) -> None:
    parsed = fastavro.parse_schema(load(topic))
    assert isinstance(parsed, dict) and parsed["type"] == "record"


@pytest.mark.parametrize("topic", list(RECORD_NAMES), ids=str)
def test_record_name_and_namespace(topic: Topic) -> None:
    schema = load(topic)
    assert schema["name"] == RECORD_NAMES[topic]
    assert schema["namespace"] == ("kracked.kraken" if topic.value.startswith("kraken.") else "kracked")


# ---------------------------------------------------------------------------------------------- conventions


@pytest.mark.parametrize("topic", PRESENT, ids=str)
def test_every_record_and_field_has_a_doc(topic: Topic) -> None:
    for rec in records(load(topic)):
        assert isinstance(rec.get("doc"), str) and rec["doc"].strip(), f"record {rec['name']} has no doc"
        for field in rec["fields"]:
            doc = field.get("doc")
            assert isinstance(doc, str) and doc.strip(), f"{rec['name']}.{field['name']} has no doc"


@pytest.mark.parametrize("topic", PRESENT, ids=str)
def test_money_fields_are_exact_decimal_strings(topic: Topic) -> None:
    for field in fields(load(topic)):
        name = field["name"]
        if is_money(name):
            assert non_null(field["type"]) == "string", f"{name} must be a decimal string"
            assert field.get("kracked.decimal") is True, f'{name} lacks "kracked.decimal": true'
        if "kracked.decimal" in field:
            assert field["kracked.decimal"] is True
            assert non_null(field["type"]) == "string", f"{name} is marked decimal but is not a string"


@pytest.mark.parametrize("topic", PRESENT, ids=str)
def test_no_float_or_double_anywhere(topic: Topic) -> None:
    for node in type_nodes(load(topic)):
        kind = node.get("type") if isinstance(node, dict) else node
        assert kind not in ("float", "double"), f"{topic}: float/double type found"


@pytest.mark.parametrize("topic", PRESENT, ids=str)
def test_timestamps_are_timestamp_micros(topic: Topic) -> None:
    for node in type_nodes(load(topic)):
        if isinstance(node, dict) and "logicalType" in node and str(node["logicalType"]).startswith("time"):
            assert node == {"type": "long", "logicalType": "timestamp-micros"}, node
    for field in fields(load(topic)):
        if field["name"] in TIME_NAMES or field["name"].startswith("ts_"):
            assert is_ts_micros(field["type"]), f"{field['name']} is not timestamp-micros"


@pytest.mark.parametrize("topic", PRESENT, ids=str)
def test_optional_fields_are_null_first_with_default_null(topic: Topic) -> None:
    for field in fields(load(topic)):
        t = field["type"]
        if isinstance(t, list):
            assert len(t) == 2 and t[0] == "null", f'{field["name"]}: unions are ["null", X]'
            assert "default" in field and field["default"] is None, f"{field['name']}: default must be null"


@pytest.mark.parametrize("topic", [t for t in RECORD_NAMES if t.value.startswith("kraken.")], ids=str)
def test_kraken_records_have_type_and_both_clocks(topic: Topic) -> None:
    by_name = {f["name"]: f for f in load(topic)["fields"]}
    assert by_name["type"]["type"] == "string"
    assert code_of(by_name["ts_recv"]) == "ts"
    assert code_of(by_name["ts_event"]) in ("ts", "ots")
    if topic not in (Topic.STATUS, Topic.BALANCES, Topic.EXECUTIONS):
        assert by_name["symbol"]["type"] == "string"


@pytest.mark.parametrize("topic", [t for t in RECORD_NAMES if t.value.startswith("kracked.")], ids=str)
def test_kracked_records_have_ts(topic: Topic) -> None:
    by_name = {f["name"]: f for f in load(topic)["fields"]}
    assert code_of(by_name["ts"]) == "ts"


@pytest.mark.parametrize("topic", list(FIXED), ids=str)
def test_fixed_record_shapes(topic: Topic) -> None:
    expected = dict(item.split(":") for item in FIXED[topic].split())
    actual = {f["name"]: code_of(f) for f in load(topic)["fields"]}
    for name, code in expected.items():
        assert actual.get(name) == code, f"{topic} {name}: {actual.get(name)} != {code}"
    for extra in set(actual) - set(expected):  # later additions must stay optional
        assert actual[extra].startswith("o"), f"{topic}: added field {extra} must be optional"


def test_level_records_match_between_book_and_book_top() -> None:
    book_level = next(r for r in records(load(Topic.BOOK)) if r["name"] == "Level")
    top_level = next(r for r in records(load(Topic.BOOK_TOP)) if r["name"] == "Level")
    assert [code_of(f) for f in book_level["fields"]] == ["dec", "dec"]
    assert [f["name"] for f in top_level["fields"]] == [f["name"] for f in book_level["fields"]]
    assert [code_of(f) for f in top_level["fields"]] == ["dec", "dec"]


def test_l3_order_shape() -> None:
    order = next(r for r in records(load(Topic.LEVEL3)) if r["name"] == "L3Order")
    codes = {f["name"]: code_of(f) for f in order["fields"]}
    assert codes == {
        "order_id": "str",
        "limit_price": "dec",
        "order_qty": "dec",
        "event": "ostr",
        "timestamp": "ots",
    }


# ---------------------------------------------------------------------------------------------- round trips

LEVELS = [{"price": "0.5666", "qty": "4831.75496356"}, {"price": "0.5660", "qty": "18097.15470000"}]

SAMPLES: dict[Topic, dict[str, Any]] = {
    Topic.BOOK: {
        "symbol": "MATIC/USD",
        "type": "update",
        "bids": [{"price": "0.5657", "qty": "1098.3947558"}],
        "asks": [],
        "checksum": 2114181697,
        "price_precision": 4,
        "qty_precision": 8,
        "depth": 10,
        "epoch": 3,
        "checksum_ok": None,
        "ts_event": TS,
        "ts_recv": TS + 812,
    },
    Topic.TRADE: {
        "symbol": "MATIC/USD",
        "type": "update",
        "side": "sell",
        "price": "0.5117",
        "qty": "40.0",
        "ord_type": "market",
        "trade_id": 4665906,
        "ts_event": 1_695_628_177_708_706,
        "ts_recv": 1_695_628_177_709_000,
    },
    Topic.LEVEL3: {
        "symbol": "MATIC/USD",
        "type": "update",
        "bids": [],
        "asks": [
            {
                "order_id": "OOIATY-6EIWY-ACVIUN",
                "limit_price": "0.5636",
                "order_qty": "302.89736033",
                "event": "delete",
                "timestamp": 1_696_616_460_097_010,
            },
            {
                "order_id": "O2BN53-5RSB2-V3J57T",
                "limit_price": "0.5640",
                "order_qty": "3500.77668626",
                "event": "add",
                "timestamp": None,
            },
        ],
        "checksum": 2841398499,
        "price_precision": 4,
        "qty_precision": 8,
        "depth": 10,
        "epoch": 1,
        "checksum_ok": False,
        "ts_event": None,
        "ts_recv": TS,
    },
    Topic.CONTINUITY: {
        "event": "trade_id_gap",
        "source": "connector",
        "channel": "trade",
        "symbol": "BTC/USD",
        "gap_start": TS,
        "gap_end": TS + 1_000_000,
        "expected": 4665847,
        "received": 4665850,
        "epoch": None,
        "detail": "3 trades missed",
        "ts": TS + 1_000_100,
    },
    Topic.DEADLETTER: {
        "source": "connector",
        "stage": "parse",
        "error": "JSONDecodeError: Expecting value",
        "raw": b'{"channel":"book",\xff',
        "channel": None,
        "origin_topic": None,
        "origin_partition": None,
        "origin_offset": None,
        "ts": TS,
    },
    Topic.BOOK_TOP: {
        "symbol": "MATIC/USD",
        "kind": "l2",
        "depth": 2,
        "bids": LEVELS,
        "asks": [{"price": "0.5668", "qty": "4410.79769741"}],
        "checksum": 2439117997,
        "checksum_ok": True,
        "valid": True,
        "epoch": 7,
        "price_precision": 4,
        "qty_precision": 8,
        "ts_event": TS,
        "ts_recv": None,
        "ts": TS + 5,
        "source_topic": "kraken.book",
        "source_partition": 2,
        "source_offset": 123_456_789_012,
    },
    Topic.BARS: {
        "symbol": "BTC/USD",
        "interval_s": 60,
        "start": 1_696_613_700_000_000,
        "end": 1_696_613_760_000_000,
        "open": "27500.1",
        "high": "27510.0",
        "low": "27499.9",
        "close": "27505.5",
        "volume": "1.23456789",
        "buy_volume": "1.00000000",
        "sell_volume": "0.23456789",
        "vwap": "27503.123456789012345678",
        "trade_count": 42,
        "first_trade_id": 100,
        "last_trade_id": 141,
        "source_partition": 0,
        "first_offset": 10,
        "last_offset": 51,
        "ts": 1_696_613_760_100_000,
    },
    Topic.SPREAD: {
        "symbol": "BTC/USD",
        "interval_s": 60,
        "start": 1_696_613_700_000_000,
        "end": 1_696_613_760_000_000,
        "source": "book.top",
        "open": "0.1",
        "close": "0.2",
        "min": "0.1",
        "max": "1.5",
        "twa": "0.316666666666666667",
        "open_bps": "0.0364",
        "close_bps": "0.0727",
        "min_bps": "0.0364",
        "max_bps": "0.5454",
        "twa_bps": "0.1151",
        "sample_count": 17,
        "ts": 1_696_613_760_000_500,
    },
    Topic.TICKER: {
        "symbol": "ALGO/USD",
        "type": "snapshot",
        "bid": "0.10025",
        "bid_qty": "740.0",
        "ask": "0.10036",
        "ask_qty": "1361.44813783",
        "last": "0.10035",
        "volume": "997038.98383185",
        "vwap": "0.10148",
        "low": "0.09979",
        "high": "0.10285",
        "change": "-0.00017",
        "change_pct": "-0.17",
        "event_trigger": "trades",
        "ts_event": 1_695_632_671_742_648,
        "ts_recv": 1_695_632_671_743_000,
    },
    Topic.OHLC: {
        "symbol": "MATIC/USD",
        "type": "update",
        "open": "0.5624",
        "high": "0.5628",
        "low": "0.5622",
        "close": "0.5627",
        "vwap": "0.5626",
        "volume": "30927.68066226",
        "trades": 12,
        "interval_begin": 1_696_436_700_000_000,
        "interval": 5,
        "ts_event": 1_696_436_790_524_394,
        "ts_recv": 1_696_436_790_525_000,
        "timestamp": 1_696_437_000_000_000,
    },
    Topic.STATUS: {
        "type": "update",
        "system": "online",
        "api_version": "v2",
        "connection_id": "13834774380200032777",
        "version": "2.0.0",
        "ts_event": None,
        "ts_recv": TS,
        "extra": {"upcoming_maintenance": "[]"},
    },
}


@pytest.mark.parametrize("topic", list(SAMPLES), ids=str)
def test_sample_record_roundtrips_unchanged(topic: Topic) -> None:
    record = SAMPLES[topic]
    assert roundtrip(topic, record) == complete(topic, record)


def test_unsigned_checksum_and_trailing_zeros_survive() -> None:
    record = dict(
        SAMPLES[Topic.BOOK], checksum=4_294_967_295, bids=[{"price": "45281.0", "qty": "0.10000000"}]
    )
    back = roundtrip(Topic.BOOK, record)
    assert back["checksum"] == 4_294_967_295
    assert back["bids"] == [{"price": "45281.0", "qty": "0.10000000"}]


def test_optional_fields_may_be_omitted() -> None:
    minimal = {k: v for k, v in SAMPLES[Topic.BOOK].items() if k not in ("checksum_ok", "ts_event")}
    back = roundtrip(Topic.BOOK, minimal)
    assert back["checksum_ok"] is None and back["ts_event"] is None


# ---------------------------------------------------------------------------------------------- Kraken data


def official_examples() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((KRAKEN_CAPTURES / "official_doc_examples.json").read_text())
    return data


def test_official_l2_snapshot_maps_to_a_verifiable_book() -> None:
    ex = official_examples()["l2_btcusd_doc_example"]
    pp, qp = ex["price_precision"], ex["qty_precision"]
    book = {
        "symbol": "BTC/USD",
        "type": "snapshot",
        "bids": [{"price": p, "qty": q} for p, q in ex["bids"]],
        "asks": [{"price": p, "qty": q} for p, q in ex["asks"]],
        "checksum": ex["checksum"],
        "price_precision": pp,
        "qty_precision": qp,
        "depth": 10,
        "epoch": 1,
        "checksum_ok": True,
        "ts_event": None,
        "ts_recv": TS,
    }
    back = roundtrip(Topic.BOOK, book)
    assert back == book
    # Everything needed to verify Kraken's CRC32 comes back from the record alone.
    asks = [
        (to_fixed(lv["price"], back["price_precision"]), to_fixed(lv["qty"], back["qty_precision"]))
        for lv in back["asks"]
    ]
    bids = [
        (to_fixed(lv["price"], back["price_precision"]), to_fixed(lv["qty"], back["qty_precision"]))
        for lv in back["bids"]
    ]
    assert l2_checksum(asks, bids) == back["checksum"] == 3310070434


def test_official_matic_snapshot_and_update_map_to_books() -> None:
    ex = official_examples()["l2_maticusd_doc_snapshot_then_update"]
    for kind in ("snapshot", "update"):
        msg = ex[kind]
        book = {
            "symbol": "MATIC/USD",
            "type": kind,
            "bids": [{"price": p, "qty": q} for p, q in msg["bids"]],
            "asks": [{"price": p, "qty": q} for p, q in msg["asks"]],
            "checksum": msg["checksum"],
            "price_precision": ex["price_precision"],
            "qty_precision": ex["qty_precision"],
            "depth": 10,
            "epoch": 1,
            "checksum_ok": None,
            "ts_event": TS,
            "ts_recv": TS + 1,
        }
        assert roundtrip(Topic.BOOK, book) == book


def test_official_l3_snapshot_maps_to_a_verifiable_level3() -> None:
    ex = official_examples()["l3_btcusd_doc_example"]
    pp, qp = ex["price_precision"], ex["qty_precision"]

    def orders(side: list[list[str]], prefix: str) -> list[dict[str, Any]]:
        return [
            {"order_id": f"{prefix}{i}", "limit_price": p, "order_qty": q, "event": None, "timestamp": TS}
            for i, (p, q) in enumerate(side)
        ]

    rec = {
        "symbol": "BTC/USD",
        "type": "snapshot",
        "bids": orders(ex["bids"], "B"),
        "asks": orders(ex["asks"], "A"),
        "checksum": ex["checksum"],
        "price_precision": pp,
        "qty_precision": qp,
        "depth": 10,
        "epoch": 1,
        "checksum_ok": True,
        "ts_event": TS,
        "ts_recv": TS,
    }
    back = roundtrip(Topic.LEVEL3, rec)
    assert back == rec

    def levels(side: list[dict[str, Any]]) -> list[list[tuple[int, int]]]:
        grouped: list[list[tuple[int, int]]] = []
        last = None
        for o in side:
            if o["limit_price"] != last:
                grouped.append([])
                last = o["limit_price"]
            grouped[-1].append((to_fixed(o["limit_price"], pp), to_fixed(o["order_qty"], qp)))
        return grouped

    assert l3_checksum(levels(back["asks"]), levels(back["bids"])) == back["checksum"] == 1063832831


def test_instrument_capture_fits_without_dropping_anything() -> None:
    """All 296 assets and 683 pairs of a real instrument snapshot map field by field and round-trip."""
    msg = exact((KRAKEN_CAPTURES / "instrument_snapshot_683_pairs.json").read_text())
    schema = load(Topic.INSTRUMENT)
    items = [("asset", a) for a in msg["data"]["assets"]] + [("pair", p) for p in msg["data"]["pairs"]]
    assert len(items) == 979
    seen: dict[str, dict[str, Any]] = {}
    for kind, item in items:
        rec = coerce_record(item, schema)  # fails on any Kraken field the schema does not name
        rec.update(kind=kind, type=msg["type"], ts_recv=TS)
        if kind == "asset":
            rec["symbol"] = item["id"]
        back = roundtrip(Topic.INSTRUMENT, rec)
        assert back == complete(Topic.INSTRUMENT, rec)
        assert back["symbol"] not in seen, "instrument keys must be unique (the topic is compacted)"
        seen[back["symbol"]] = back
    # Exponent text is kept exactly as it came (this capture writes 1E-8) and is still a valid decimal.
    assert seen["BTC/USD"]["qty_increment"] == "1E-8"
    assert to_fixed(seen["BTC/USD"]["qty_increment"], 8) == 1
    assert seen["BTC"]["kind"] == "asset" and seen["BTC"]["id"] == "BTC" and seen["BTC"]["base"] is None


EXECUTIONS_DOC_EXAMPLES = [
    """{"order_id":"OK4GJX-KSTLS-7DZZO5","order_userref":3,"symbol":"BTC/USD","order_qty":0.005,"cum_cost":0.0,
    "time_in_force":"GTC","exec_type":"pending_new","side":"sell","order_type":"limit","limit_price_type":"static",
    "limit_price":26500.0,"stop_price":0.0,"order_status":"pending_new","fee_usd_equiv":0.0,"fee_ccy_pref":"fciq",
    "timestamp":"2023-09-22T10:33:05.709950Z"}""",
    """{"timestamp":"2023-09-22T10:33:05.709982Z","order_status":"new","exec_type":"new","order_userref":3,
    "order_id":"OK4GJX-KSTLS-7DZZO5"}""",
    """{"order_id":"OK4GJX-KSTLS-7DZZO5","order_userref":3,"exec_id":"TGBB7L-HT5LX-J3BZ4A","exec_type":"trade",
    "trade_id":62887576,"symbol":"BTC/USD","side":"sell","last_qty":0.005,"last_price":26599.9,"liquidity_ind":"t",
    "cost":132.9995,"order_type":"limit","timestamp":"2023-09-22T10:33:05.709993Z","order_status":"partially_filled",
    "cum_qty":0.005,"cum_cost":132.9995,"avg_price":26599.9,"fee_usd_equiv":0.3458,
    "fees":[{"asset":"USD","qty":0.3458}]}""",
]

# Every execution-report field of the reference (§3.3), deprecated ones included.
EXECUTION_FIELDS = [
    "order_id", "cl_ord_id", "order_userref", "symbol", "side", "order_type", "order_qty",
    "cash_order_qty", "limit_price", "limit_price_type", "display_qty", "display_qty_remain",
    "time_in_force", "effective_time", "expire_time", "post_only", "reduce_only", "margin",
    "margin_borrow", "no_mpp", "liquidated", "position_status", "exec_id", "exec_type", "order_status",
    "trade_id", "last_qty", "last_price", "cost", "cum_qty", "cum_cost", "avg_price", "liquidity_ind",
    "fees", "fee_usd_equiv", "fee_ccy_pref", "triggers", "contingent", "amended", "reason", "ord_ref_id",
    "sender_sub_id", "ext_ord_id", "ext_exec_id", "user", "cancel_reason", "stop_price", "trigger",
    "triggered_price",
]  # fmt: skip


def test_execution_schema_names_every_documented_field() -> None:
    schema = load(Topic.EXECUTIONS)
    names = {f["name"] for f in schema["fields"]}
    assert set(EXECUTION_FIELDS) <= names
    triggers = next(r for r in records(schema) if r["name"] == "Triggers")
    assert {f["name"] for f in triggers["fields"]} >= {
        "reference", "price", "price_type", "actual_price", "peak_price", "last_price", "status", "timestamp",
    }  # fmt: skip
    contingent = next(r for r in records(schema) if r["name"] == "Contingent")
    assert {f["name"] for f in contingent["fields"]} >= {
        "order_type", "trigger_price", "trigger_price_type", "limit_price", "limit_price_type",
    }  # fmt: skip


@pytest.mark.parametrize("raw", EXECUTIONS_DOC_EXAMPLES)
def test_execution_doc_examples_map_and_roundtrip(raw: str) -> None:
    schema = load(Topic.EXECUTIONS)
    rec = coerce_record(exact(raw), schema, renames={"timestamp": "ts_event"})
    rec.update(type="update", sequence=10, ts_recv=TS)
    back = roundtrip(Topic.EXECUTIONS, rec)
    assert back == complete(Topic.EXECUTIONS, rec)
    assert back["extra"] is None
    if back["fees"] is not None:
        assert back["fees"] == [{"asset": "USD", "qty": "0.3458"}]


BALANCES_DOC_EXAMPLES = [
    """{"asset":"MATIC","asset_class":"currency","balance":500,"wallets":[{"type":"spot","id":"main","balance":300},
    {"type":"earn","id":"flex","balance":200}]}""",
    """{"ledger_id":"ADKKFF-WEA5A-CNUBHG","ref_id":"AGBWUJRU-LAREZ-W3UFAN","timestamp":"2023-09-22T10:23:42.925034Z",
    "type":"deposit","asset":"BTC","asset_class":"currency","category":"deposit","wallet_type":"spot",
    "wallet_id":"main","amount":0.01,"fee":0.0,"balance":0.02}""",
]


@pytest.mark.parametrize("raw", BALANCES_DOC_EXAMPLES)
def test_balance_doc_examples_map_and_roundtrip(raw: str) -> None:
    schema = load(Topic.BALANCES)
    rec = coerce_record(exact(raw), schema, renames={"timestamp": "ts_event", "type": "ledger_type"})
    rec.update(type="snapshot" if "wallets" in rec else "update", sequence=2, ts_recv=TS)
    back = roundtrip(Topic.BALANCES, rec)
    assert back == complete(Topic.BALANCES, rec)
    names = {f["name"] for f in schema["fields"]}
    assert {"subtype", "user"} <= names  # documented update fields absent from this example


def test_unknown_kraken_fields_are_kept_in_extra() -> None:
    rec = {"order_id": "OABC", "exec_type": "status", "type": "update", "ts_recv": TS}
    rec["extra"] = {"ratecount": "12", "new_thing": '{"a":[1,2.50]}'}
    assert roundtrip(Topic.EXECUTIONS, rec)["extra"] == rec["extra"]
