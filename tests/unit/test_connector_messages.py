"""connector.kraken.messages: Kraken v2 frames → typed models, exact decimals, strict shapes."""

from __future__ import annotations

import json

import pytest

from connector.kraken import messages as m
from tests.conftest import KRAKEN_CAPTURES

BOOK_UPDATE = (
    '{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","bids":[{"price":96953.3,"qty":2.57855918}],'
    '"asks":[],"checksum":670882415,"timestamp":"2025-02-10T00:22:43.211991Z"}]}'
)


def test_book_keeps_the_exact_decimal_text_and_ints() -> None:
    msg = m.parse(
        '{"channel":"book","type":"snapshot","data":[{"symbol":"ETH/USD","bids":[{"price":1873.30,"qty":0.10000000}],'
        '"asks":[{"price":1873,"qty":4}],"checksum":4294967295}]}'
    )
    assert isinstance(msg, m.BookMessage)
    assert msg.type == "snapshot"
    assert msg.bids == [{"price": "1873.30", "qty": "0.10000000"}]  # trailing zeros kept, no float
    assert msg.asks == [{"price": "1873", "qty": "4"}]  # JSON ints become their text
    assert msg.checksum == 4294967295
    assert msg.timestamp is None  # optional on snapshots (reference §2.2)


def test_book_update_with_one_side_missing_is_empty() -> None:
    msg = m.parse(BOOK_UPDATE.replace(',"asks":[]', ""))
    assert isinstance(msg, m.BookMessage)
    assert list(msg.asks) == []
    assert msg.bids[0]["price"] == "96953.3"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{not json", "invalid JSON"),
        ("[1,2]", "not an object"),
        ('{"channel":"book"} trailing', "extra data"),
        ('{"foo":1}', "neither `channel` nor `method`"),
        ('{"channel":"nope","data":[]}', "unknown channel"),
        (BOOK_UPDATE.replace('"update"', '"delta"'), "neither snapshot nor update"),
        (BOOK_UPDATE.replace('"checksum":670882415,', ""), "checksum"),
        (BOOK_UPDATE.replace("96953.3", "true"), "expected a number"),
        (
            BOOK_UPDATE.replace("96953.3", '"96953.3"').replace('"qty":2.57855918', '"qty":null'),
            "expected a number",
        ),
        ('{"channel":"book","type":"update","data":[]}', "exactly one"),
        ('{"channel":"trade","type":"update","data":[{"symbol":"X/Y"}]}', "price"),
        ("", "invalid JSON"),
    ],
)
def test_malformed_frames_raise_parse_error_with_a_reason(text: str, reason: str) -> None:
    with pytest.raises(m.ParseError) as info:
        m.parse(text)
    assert reason in str(info.value)


def test_parse_error_knows_the_channel_when_it_got_that_far() -> None:
    with pytest.raises(m.ParseError) as info:
        m.parse(BOOK_UPDATE.replace('"checksum":670882415,', ""))
    assert info.value.channel == "book"


def test_leading_whitespace_and_bytes_are_accepted() -> None:
    assert isinstance(m.parse("  \n" + BOOK_UPDATE), m.BookMessage)
    assert isinstance(m.parse(BOOK_UPDATE.encode()), m.BookMessage)
    with pytest.raises(m.ParseError, match="UTF-8"):
        m.parse(b"\xff\xfe")


def test_trades_batch_each_with_its_own_symbol_and_exponent_text() -> None:
    msg = m.parse((KRAKEN_CAPTURES / "cryptonorm_trade.json").read_text())
    assert isinstance(msg, m.TradeMessage)
    assert [t.trade_id for t in msg.trades] == [102677144, 102677145]
    assert msg.trades[1].qty == "2.5e-05"  # kept exactly as sent
    assert msg.trades[0] == m.Trade(
        "BTC/USD", "sell", "62370.5", "0.0001", "limit", 102677144, "2026-06-23T20:48:52.692198Z"
    )


def test_ticker_ohlc_and_status() -> None:
    ticker = m.parse(
        '{"channel":"ticker","type":"snapshot","data":[{"symbol":"ALGO/USD","bid":0.10025,"bid_qty":740.0,'
        '"ask":0.10036,"ask_qty":1361.44813783,"last":0.10035,"volume":997038.98383185,"vwap":0.10148,'
        '"low":0.09979,"high":0.10285,"change":-0.00017,"change_pct":-0.17,"timestamp":"2023-09-25T09:04:31.742648Z"}]}'
    )
    assert isinstance(ticker, m.TickerMessage)
    assert (ticker.bid, ticker.bid_qty, ticker.change, ticker.change_pct) == (
        "0.10025",
        "740.0",
        "-0.00017",
        "-0.17",
    )
    ohlc = m.parse(
        '{"channel":"ohlc","type":"update","timestamp":"2023-10-04T16:26:30.524394914Z","data":[{"symbol":"MATIC/USD",'
        '"open":0.5624,"high":0.5628,"low":0.5622,"close":0.5627,"trades":12,"volume":30927.68066226,"vwap":0.5626,'
        '"interval_begin":"2023-10-04T16:25:00.000000000Z","interval":5,"timestamp":"2023-10-04T16:30:00.000000Z"}]}'
    )
    assert isinstance(ohlc, m.OhlcMessage)
    candle = ohlc.candles[0]
    assert (candle.open, candle.trades, candle.interval, candle.volume) == ("0.5624", 12, 5, "30927.68066226")
    assert ohlc.timestamp == "2023-10-04T16:26:30.524394914Z"
    status = m.parse(
        '{"channel":"status","data":[{"api_version":"v2","connection_id":13834774380200032777,'
        '"system":"online","version":"2.0.0"}],"type":"update"}'
    )
    assert isinstance(status, m.StatusMessage)
    assert status.system == "online"
    assert str(status.item["connection_id"]) == "13834774380200032777"  # u64, not truncated


def test_ohlc_trade_count_sent_as_float_is_accepted_when_whole() -> None:
    frame = (
        '{"channel":"ohlc","type":"update","data":[{"symbol":"A/B","open":1,"high":1,"low":1,"close":1,'
        '"trades":%s,"volume":1,"vwap":1,"interval_begin":"2023-10-04T16:25:00Z","interval":1}]}'
    )
    msg = m.parse(frame % "3.0")
    assert isinstance(msg, m.OhlcMessage) and msg.candles[0].trades == 3
    with pytest.raises(m.ParseError, match="whole"):
        m.parse(frame % "3.5")


def test_instrument_keeps_number_tokens_for_extra_fields() -> None:
    msg = m.parse((KRAKEN_CAPTURES / "instrument_snapshot_683_pairs.json").read_text())
    assert isinstance(msg, m.InstrumentMessage)
    assert len(msg.pairs) == 683
    btc = next(p for p in msg.pairs if p["symbol"] == "BTC/USD")
    assert isinstance(btc["qty_increment"], m.Num)
    assert str(btc["price_precision"]) == "1"


def test_executions_and_balances_carry_sequence() -> None:
    ex = m.parse(
        '{"channel":"executions","type":"update","data":[{"order_id":"OK4GJX-KSTLS-7DZZO5","exec_type":"new",'
        '"order_status":"new","order_userref":3,"timestamp":"2023-09-22T10:33:05.709982Z"}],"sequence":9}'
    )
    assert isinstance(ex, m.ExecutionsMessage) and ex.sequence == 9
    bal = m.parse(
        '{"channel":"balances","type":"snapshot","data":[{"asset":"MATIC","asset_class":"currency","balance":500,'
        '"wallets":[{"type":"spot","id":"main","balance":300}]}],"sequence":1}'
    )
    assert isinstance(bal, m.BalancesMessage) and bal.sequence == 1
    assert str(bal.items[0]["balance"]) == "500"


def test_responses_acks_errors_pong_and_heartbeat() -> None:
    ack = m.parse(
        '{"method":"subscribe","result":{"channel":"book","depth":10,"snapshot":true,"symbol":"ALGO/USD"},'
        '"success":true,"time_in":"2023-10-06T17:35:55.219022Z","time_out":"2023-10-06T17:35:55.219067Z","req_id":7}'
    )
    assert ack == m.Ack(
        "subscribe",
        True,
        7,
        None,
        "ALGO/USD",
        "book",
        {"channel": "book", "depth": 10, "snapshot": True, "symbol": "ALGO/USD"},
        "2023-10-06T17:35:55.219022Z",
        "2023-10-06T17:35:55.219067Z",
    )
    err = m.parse(
        '{"error":"Currency pair not supported xxx/USD","method":"subscribe","req_id":69,"success":false,'
        '"symbol":"xxx/USD","time_in":"2025-04-27T15:37:48.652299Z","time_out":"2025-04-27T15:37:48.652337Z"}'
    )
    assert isinstance(err, m.Ack)
    assert (err.success, err.symbol, err.req_id) == (False, "xxx/USD", 69)
    assert err.error == "Currency pair not supported xxx/USD"
    pong = m.parse('{"method":"pong","req_id":101,"time_in":"x","time_out":"y"}')
    assert pong == m.Pong(101, "x", "y")
    assert m.parse('{"channel":"heartbeat"}') is m.HEARTBEAT
    with pytest.raises(m.ParseError, match="success"):
        m.parse('{"method":"subscribe","result":{}}')


def test_every_line_of_the_real_captures_parses() -> None:
    for name in ("crypto-tracker_btc-eth_book-trade.jsonl", "tickvault_btc_book.jsonl"):
        for line in (KRAKEN_CAPTURES / name).read_text().splitlines():
            if line.strip():
                assert m.parse(line) is not None


@pytest.mark.parametrize(
    ("text", "micros"),
    [
        ("2023-09-25T09:04:31.742648Z", 1695632671742648),
        ("2023-10-06T17:35:00.279389650Z", 1696613700279389),  # ns truncated
        ("2023-09-25T09:04:31Z", 1695632671000000),
        ("2023-09-25T09:04:31.5Z", 1695632671500000),
        ("2023-09-25T09:04:31.742648", 1695632671742648),  # missing Z = UTC
        ("2023-09-25T11:04:31.742648+02:00", 1695632671742648),
        ("1969-12-31T23:59:59.5Z", -500000),
    ],
)
def test_timestamps_to_micros(text: str, micros: int) -> None:
    assert m.ts_micros(text) == micros
    assert m.ts_micros(text) == micros  # cached path gives the same


@pytest.mark.parametrize("text", ["yesterday", "2023-09-25T09:04:31.xZ", "2023-13-25T09:04:31Z", 17])
def test_bad_timestamps(text: object) -> None:
    with pytest.raises(m.ParseError):
        m.ts_micros(text)  # type: ignore[arg-type]


def test_request_text_is_compact_json_with_req_id() -> None:
    text = m.request("subscribe", {"channel": "book", "symbol": ["BTC/USD"], "depth": 10}, 5)
    assert json.loads(text) == {
        "method": "subscribe",
        "req_id": 5,
        "params": {"channel": "book", "symbol": ["BTC/USD"], "depth": 10},
    }
    assert json.loads(m.request("ping", None, 6)) == {"method": "ping", "req_id": 6}
