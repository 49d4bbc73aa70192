"""connector.mapping: every record fits its real `.avsc` and carries Kraken's values unchanged."""

from __future__ import annotations

import io
from typing import Any

import fastavro
import pytest

from connector.integrity import Precision, Verdict
from connector.kraken import messages as m
from connector.mapping import (
    MapError,
    Out,
    continuity_record,
    deadletter_record,
    json_text,
    map_message,
    precisions_from,
)
from schemas.serde import parsed_schema, reader_schema
from schemas.topics import Topic
from tests.conftest import KRAKEN_CAPTURES

TS = 1_700_000_000_123_456


def _roundtrip(out: Out) -> dict[str, Any]:
    """Encode with fastavro against the real schema and decode again: proves the record fits."""
    schema = parsed_schema(out.topic)
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, out.record)
    buf.seek(0)
    decoded = fastavro.schemaless_reader(buf, reader_schema(out.topic), None)  # timestamps as ints
    assert isinstance(decoded, dict)
    return decoded


def test_book_record() -> None:
    msg = m.parse(
        '{"channel":"book","type":"update","data":[{"symbol":"ETH/USD","bids":[{"price":1873.30,"qty":0.5}],'
        '"asks":[],"checksum":670882415,"timestamp":"2025-02-10T00:22:43.211991Z"}]}'
    )
    verdict = Verdict(42, True, 670882415, False, Precision(2, 8))
    [out] = map_message(msg, TS, book_depth=25, verdict=verdict)
    assert out.topic is Topic.BOOK and out.key == "ETH/USD"
    assert _roundtrip(out) == {
        "symbol": "ETH/USD",
        "type": "update",
        "bids": [{"price": "1873.30", "qty": "0.5"}],
        "asks": [],
        "checksum": 670882415,
        "price_precision": 2,
        "qty_precision": 8,
        "depth": 25,
        "epoch": 42,
        "checksum_ok": True,
        "ts_event": 1739146963211991,
        "ts_recv": TS,
    }


def test_level3_record() -> None:
    msg = m.parse(
        '{"channel":"level3","type":"update","data":[{"checksum":2841398499,"symbol":"MATIC/USD","bids":[],'
        '"asks":[{"event":"delete","order_id":"OOIATY-6EIWY-ACVIUN","limit_price":0.5636,"order_qty":302.89736033,'
        '"timestamp":"2023-10-06T18:21:00.097010033Z"}]}]}'
    )
    [out] = map_message(msg, TS, level3_depth=100, verdict=Verdict(7, None, None, False, Precision(4, 8)))
    rec = _roundtrip(out)
    assert rec["asks"] == [
        {
            "order_id": "OOIATY-6EIWY-ACVIUN",
            "limit_price": "0.5636",
            "order_qty": "302.89736033",
            "event": "delete",
            "timestamp": 1696616460097010,
        }
    ]
    assert (rec["depth"], rec["epoch"], rec["checksum_ok"], rec["ts_event"]) == (100, 7, None, None)


def test_trade_records_one_per_trade() -> None:
    msg = m.parse((KRAKEN_CAPTURES / "cryptonorm_trade.json").read_text())
    outs = map_message(msg, TS)
    assert [o.key for o in outs] == ["BTC/USD", "BTC/USD"]
    recs = [_roundtrip(o) for o in outs]
    assert recs[1] == {
        "symbol": "BTC/USD",
        "type": "update",
        "side": "sell",
        "price": "62369.9",
        "qty": "2.5e-05",
        "ord_type": "limit",
        "trade_id": 102677145,
        "ts_event": 1782247732692198,
        "ts_recv": TS,
    }


def test_ticker_record_carries_event_trigger() -> None:
    msg = m.parse(
        '{"channel":"ticker","type":"update","data":[{"symbol":"ALGO/USD","bid":0.10025,"bid_qty":740.0,'
        '"ask":0.10035,"ask_qty":740.0,"last":0.10035,"volume":997038.98383185,"vwap":0.10148,"low":0.09979,'
        '"high":0.10285,"change":-0.00017,"change_pct":-0.17}]}'
    )
    [out] = map_message(msg, TS, event_trigger="bbo")
    rec = _roundtrip(out)
    assert (rec["event_trigger"], rec["bid_qty"], rec["ts_event"], rec["change"]) == (
        "bbo",
        "740.0",
        None,
        "-0.00017",
    )


def test_ohlc_records_use_message_timestamp_as_ts_event() -> None:
    msg = m.parse(
        '{"channel":"ohlc","type":"snapshot","timestamp":"2023-10-04T16:26:01.806315597Z","data":['
        '{"symbol":"ALGO/USD","open":0.09875,"high":0.09875,"low":0.09875,"close":0.09875,"trades":1,'
        '"volume":201.86015,"vwap":0.09875,"interval_begin":"2023-10-04T15:25:00.000000000Z","interval":5,'
        '"timestamp":"2023-10-04T15:30:00.000000Z"},'
        '{"symbol":"ALGO/USD","open":0.09875,"high":0.0988,"low":0.09875,"close":0.09875,"trades":13,'
        '"volume":16255.46368,"vwap":0.09879,"interval_begin":"2023-10-04T15:30:00.000000000Z","interval":5}]}'
    )
    recs = [_roundtrip(o) for o in map_message(msg, TS)]
    assert [r["interval_begin"] for r in recs] == [1696433100000000, 1696433400000000]
    assert recs[0]["ts_event"] == recs[1]["ts_event"] == 1696436761806315
    assert (recs[0]["timestamp"], recs[1]["timestamp"]) == (1696433400000000, None)
    assert recs[1]["trades"] == 13 and recs[1]["high"] == "0.0988"


def test_instrument_records_assets_and_pairs_with_extra() -> None:
    text = (
        '{"channel":"instrument","type":"snapshot","data":{"assets":[{"id":"BTC","status":"enabled","precision":10,'
        '"precision_display":5,"borrowable":true,"collateral_value":1.0,"margin_rate":0.01,"brand_new":[1.50,"x"]}],'
        '"pairs":[{"symbol":"BTC/USD","base":"BTC","quote":"USD","status":"online","qty_precision":8,'
        '"qty_increment":1e-08,"price_precision":1,"cost_precision":5,"marginable":true,"has_index":true,'
        '"cost_min":0.5,"margin_initial":0.2,"position_limit_long":250,"position_limit_short":200,"tick_size":0.1,'
        '"price_increment":0.1,"qty_min":0.0001}]}}'
    )
    outs = map_message(m.parse(text), TS)
    assert [(o.key, o.record["kind"]) for o in outs] == [("BTC", "asset"), ("BTC/USD", "pair")]
    asset, pair = (_roundtrip(o) for o in outs)
    assert asset["extra"] == {"brand_new": '[1.50,"x"]'}  # unknown field kept as its JSON text
    assert (asset["collateral_value"], asset["precision"], asset["borrowable"]) == ("1.0", 10, True)
    assert pair["extra"] is None
    assert (pair["qty_increment"], pair["price_precision"], pair["position_limit_long"]) == ("1e-08", 1, 250)
    assert pair["symbol"] == "BTC/USD" and pair["status"] == "online"


def test_instrument_capture_maps_every_item() -> None:
    msg = m.parse((KRAKEN_CAPTURES / "instrument_snapshot_683_pairs.json").read_text())
    outs = map_message(msg, TS)
    assert len(outs) == 683 + 296
    for out in outs[:50] + outs[-50:]:
        _roundtrip(out)


def test_status_record_connection_id_as_text() -> None:
    msg = m.parse(
        '{"channel":"status","data":[{"api_version":"v2","connection_id":13834774380200032777,"system":"online",'
        '"version":"2.0.0","upcoming_maintenance":[]}],"type":"update"}'
    )
    [out] = map_message(msg, TS)
    rec = _roundtrip(out)
    assert rec["connection_id"] == "13834774380200032777"
    assert rec["extra"] == {"upcoming_maintenance": "[]"}
    assert (rec["system"], rec["type"], rec["ts_event"]) == ("online", "update", None)


def test_executions_records_keyed_by_order_id() -> None:
    msg = m.parse(
        '{"channel":"executions","type":"update","data":[{"order_id":"OK4GJX-KSTLS-7DZZO5","order_userref":3,'
        '"exec_id":"TGBB7L-HT5LX-J3BZ4A","exec_type":"trade","trade_id":62887576,"symbol":"BTC/USD","side":"sell",'
        '"last_qty":0.005,"last_price":26599.9,"liquidity_ind":"t","cost":132.9995,"order_type":"limit",'
        '"timestamp":"2023-09-22T10:33:05.709993Z","order_status":"partially_filled","cum_qty":0.005,'
        '"cum_cost":132.9995,"avg_price":26599.9,"fee_usd_equiv":0.3458,"fees":[{"asset":"USD","qty":0.3458}],'
        '"triggers":{"reference":"last","price":1.0,"status":"untriggered","timestamp":"2023-09-22T10:33:05Z"}}],'
        '"sequence":10}'
    )
    [out] = map_message(msg, TS)
    assert out.key == "OK4GJX-KSTLS-7DZZO5"
    rec = _roundtrip(out)
    assert rec["fees"] == [{"asset": "USD", "qty": "0.3458"}]
    assert rec["triggers"]["price"] == "1.0" and rec["triggers"]["timestamp"] == 1695378785000000
    assert (rec["sequence"], rec["trade_id"], rec["order_userref"], rec["last_price"]) == (
        10,
        62887576,
        3,
        "26599.9",
    )
    assert rec["ts_event"] == 1695378785709993 and rec["extra"] is None


def test_balances_snapshot_and_update_items() -> None:
    snap = m.parse(
        '{"channel":"balances","data":[{"asset":"MATIC","asset_class":"currency","balance":500,'
        '"wallets":[{"type":"spot","id":"main","balance":300},{"type":"earn","id":"flex","balance":200}]}],'
        '"type":"snapshot","sequence":1}'
    )
    [out] = map_message(snap, TS)
    rec = _roundtrip(out)
    assert out.key == "MATIC"
    assert rec["balance"] == "500" and rec["wallets"][1] == {"type": "earn", "id": "flex", "balance": "200"}
    upd = m.parse(
        '{"channel":"balances","type":"update","data":[{"ledger_id":"ADKKFF-WEA5A-CNUBHG","ref_id":"AGBWUJRU",'
        '"timestamp":"2023-09-22T10:23:42.925034Z","type":"deposit","asset":"BTC","asset_class":"currency",'
        '"category":"deposit","wallet_type":"spot","wallet_id":"main","amount":0.01,"fee":0.0,"balance":0.02}],'
        '"sequence":2}'
    )
    [out] = map_message(upd, TS)
    rec = _roundtrip(out)
    assert (rec["type"], rec["ledger_type"], rec["amount"], rec["fee"]) == (
        "update",
        "deposit",
        "0.01",
        "0.0",
    )
    assert rec["extra"] is None and rec["wallets"] is None


@pytest.mark.parametrize(
    "text",
    [
        '{"channel":"executions","type":"update","data":[{"exec_type":"new"}],"sequence":1}',  # no order_id
        '{"channel":"executions","type":"update","data":[{"order_id":"O","exec_type":"new","post_only":"yes"}]}',
        '{"channel":"balances","type":"update","data":[{"asset":"BTC","balance":[1]}]}',
        '{"channel":"status","type":"update","data":[{"system":"online","connection_id":true}]}',
    ],
)
def test_items_that_do_not_fit_raise_map_error(text: str) -> None:
    with pytest.raises(MapError):
        map_message(m.parse(text), TS)


def test_continuity_and_deadletter_records() -> None:
    out = continuity_record(
        "trade_id_gap", "connector", TS, "2 missing", "trade", "BTC/USD", 1, 2, 10, 12, None
    )
    assert out.key == "BTC/USD" and _roundtrip(out)["expected"] == 10
    assert continuity_record("disconnect", "connector", TS, "x", channel="book,trade").key == "book,trade"
    dl = deadletter_record("connector", "parse", "invalid JSON", b"{oops", TS, None)
    assert dl.key == "connector" and _roundtrip(dl)["raw"] == b"{oops"


def test_precisions_from_pairs_and_json_text() -> None:
    msg = m.parse((KRAKEN_CAPTURES / "instrument_snapshot_683_pairs.json").read_text())
    assert isinstance(msg, m.InstrumentMessage)
    precisions = precisions_from(msg.pairs)
    assert precisions["BTC/USD"] == Precision(1, 8)
    assert len(precisions) == 683
    assert json_text({"a": [m.Num("1.50"), True, None, "x"]}) == '{"a":[1.50,true,null,"x"]}'


def test_book_without_verdict_is_refused() -> None:
    msg = m.parse(
        '{"channel":"book","type":"update","data":[{"symbol":"A/B","bids":[],"asks":[],"checksum":1}]}'
    )
    with pytest.raises(ValueError, match="verdict"):
        map_message(msg, TS)
