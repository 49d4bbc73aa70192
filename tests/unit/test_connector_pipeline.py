"""connector.pipeline: checksums → resubscribe + continuity, trade gaps, dead letters by stage."""

from __future__ import annotations

import io
import json
from typing import Any

import fastavro

from connector.kraken import messages as m
from connector.kraken.client import ConnectionSpec, ConnEvent, Subscription
from connector.pipeline import Pipeline
from connector.publisher import Publisher
from schemas.serde import reader_schema
from schemas.topics import Topic, find_topic
from tests.conftest import KRAKEN_CAPTURES
from tests.unit.test_connector_publisher import FakeProducer, FakeSerde

DOC = json.loads((KRAKEN_CAPTURES / "official_doc_examples.json").read_text())


class FakeConn:
    """What the pipeline uses of a Connection."""

    def __init__(
        self, channels: tuple[str, ...] = ("book", "trade"), symbols: tuple[str, ...] = ("BTC/USD",)
    ) -> None:
        subs = tuple(Subscription(c, symbols) for c in channels)
        self.spec = ConnectionSpec("public-1", "ws://x/v2", subs)
        self.name = "public-1"
        self.event_trigger = "trades"
        self.resubscribed: list[tuple[str, str]] = []

    def wanted_symbols(self, channel: str) -> list[str]:
        return [s for sub in self.spec.subscriptions if sub.channel == channel for s in sub.symbols]

    def resubscribe(self, channel: str, symbol: str, reason: str) -> bool:
        self.resubscribed.append((channel, symbol))
        return True


class Env:
    def __init__(
        self, channels: frozenset[str] = frozenset({"book", "trade", "status", "instrument", "ticker"})
    ) -> None:
        self.producer = FakeProducer()
        self.pub = Publisher(self.producer, FakeSerde(), "connector")  # type: ignore[arg-type]
        self.pub.prepare(list(Topic))
        self.pipe = Pipeline(self.pub, book_depth=10, publish_channels=channels)
        self.conn = FakeConn()
        self.ts = 1_700_000_000_000_000

    def feed(self, text: str) -> None:
        self.ts += 1
        try:
            msg = m.parse(text)
        except m.ParseError as exc:
            self.pipe.on_malformed(self.conn, text, exc, self.ts)  # type: ignore[arg-type]
            return
        assert not isinstance(msg, m.Ack | m.Pong | m.Heartbeat)
        self.pipe.on_message(self.conn, msg, text, self.ts)  # type: ignore[arg-type]

    def records(self, topic: Topic) -> list[dict[str, Any]]:
        out = []
        for name, value, _ in self.producer.sent:
            if find_topic(name, "p.") is topic:
                rec = fastavro.schemaless_reader(io.BytesIO(value[5:]), reader_schema(topic), None)
                assert isinstance(rec, dict)
                out.append(rec)
        return out


def _book(
    kind: str, bids: list[list[str]], asks: list[list[str]], checksum: int, symbol: str = "BTC/USD"
) -> str:
    def side(levels: list[list[str]]) -> str:
        return "[" + ",".join(f'{{"price":{p},"qty":{q}}}' for p, q in levels) + "]"

    return (
        f'{{"channel":"book","type":"{kind}","data":[{{"symbol":"{symbol}","bids":{side(bids)},'
        f'"asks":{side(asks)},"checksum":{checksum},"timestamp":"2023-10-06T17:35:55.440295Z"}}]}}'
    )


def _instrument(symbol: str, pp: int, qp: int) -> str:
    pair = {
        "symbol": symbol,
        "base": "B",
        "quote": "Q",
        "status": "online",
        "price_precision": pp,
        "qty_precision": qp,
    }
    return json.dumps({"channel": "instrument", "type": "snapshot", "data": {"assets": [], "pairs": [pair]}})


def test_checksum_mismatch_resubscribes_that_symbol_and_the_next_snapshot_starts_a_new_epoch() -> None:
    env = Env()
    ex = DOC["l2_btcusd_doc_example"]
    env.feed(_instrument("BTC/USD", 1, 8))
    snapshot = _book("snapshot", ex["bids"], ex["asks"], ex["checksum"])
    env.feed(snapshot)
    env.feed(_book("update", [["45283.5", "0.2"]], [], 12345))  # wrong checksum
    env.feed(_book("update", [["45283.5", "0.3"]], [], 1))  # arrives before the new snapshot
    env.feed(snapshot)
    books = env.records(Topic.BOOK)
    assert [b["checksum_ok"] for b in books] == [True, False, None, True]
    assert books[0]["epoch"] == books[1]["epoch"] == books[2]["epoch"] < books[3]["epoch"]
    assert (books[0]["price_precision"], books[0]["qty_precision"], books[0]["depth"]) == (1, 8, 10)
    assert books[0]["bids"][3] == {"price": "45281.0", "qty": "0.10000000"}  # Kraken's text, unchanged
    assert env.conn.resubscribed == [("book", "BTC/USD")]
    [event] = [c for c in env.records(Topic.CONTINUITY) if c["event"] == "checksum_mismatch"]
    assert (event["symbol"], event["channel"], event["expected"], event["epoch"]) == (
        "BTC/USD",
        "book",
        12345,
        books[1]["epoch"],
    )
    assert event["received"] is not None and event["received"] != 12345
    assert env.pipe.checksum_mismatches["book"] == 1


def test_trade_gap_and_resent_snapshot_trades() -> None:
    env = Env()

    def trades(kind: str, ids: list[int]) -> str:
        items = ",".join(
            f'{{"symbol":"ETH/USD","side":"buy","price":1.5,"qty":2,"ord_type":"limit","trade_id":{i},'
            f'"timestamp":"2023-09-25T07:49:3{i % 10}.000000Z"}}'
            for i in ids
        )
        return f'{{"channel":"trade","type":"{kind}","data":[{items}]}}'

    env.feed(trades("snapshot", [1, 2, 3]))
    env.feed(trades("update", [4]))
    env.feed(trades("update", [7, 8]))  # 5 and 6 missing
    env.feed(trades("snapshot", [6, 7, 8, 9]))  # after a resubscribe: 6 and 9 are new... 6 is behind
    published = [t["trade_id"] for t in env.records(Topic.TRADE)]
    assert published == [1, 2, 3, 4, 7, 8, 9]
    [gap] = [c for c in env.records(Topic.CONTINUITY) if c["event"] == "trade_id_gap"]
    assert (gap["symbol"], gap["expected"], gap["received"]) == ("ETH/USD", 5, 7)
    assert gap["gap_start"] is not None and gap["gap_end"] is not None and gap["gap_start"] < gap["gap_end"]
    assert env.pipe.trade_gaps == 1 and env.pipe.duplicate_trades == 3


def test_dead_letters_by_stage_and_the_pipeline_goes_on() -> None:
    env = Env()
    env.feed('{"channel":"book","type":"update","data":[{"symbol":"BTC/USD"}]}')  # parse: no checksum
    env.feed("not json at all")  # parse
    # map: a timestamp that is not RFC3339
    env.feed(
        '{"channel":"trade","type":"update","data":[{"symbol":"A/B","side":"buy","price":1,"qty":1,'
        '"ord_type":"limit","trade_id":1,"timestamp":"yesterday"}]}'
    )
    # serialize: a trade id beyond 64 bits
    env.feed(
        '{"channel":"trade","type":"update","data":[{"symbol":"A/B","side":"buy","price":1,"qty":1,'
        f'"ord_type":"limit","trade_id":{2**70},"timestamp":"2023-09-25T07:49:37Z"}}]}}'
    )
    env.feed((KRAKEN_CAPTURES / "cryptonorm_trade.json").read_text())  # still working
    dead = env.records(Topic.DEADLETTER)
    assert [d["stage"] for d in dead] == ["parse", "parse", "map", "serialize"]
    assert dead[0]["channel"] == "book" and dead[1]["channel"] is None and dead[2]["channel"] == "trade"
    assert dead[1]["raw"] == b"not json at all"
    assert "checksum" in dead[0]["error"]
    assert len(env.records(Topic.TRADE)) == 2


def test_status_changes_and_channel_selection() -> None:
    env = Env(channels=frozenset({"book"}))
    status = (
        '{"channel":"status","type":"update","data":[{"system":"%s","api_version":"v2","connection_id":1}]}'
    )
    env.feed(status % "online")
    env.feed(status % "online")
    env.feed(status % "maintenance")
    env.feed(status % "online")
    env.feed(_instrument("BTC/USD", 1, 8))
    events = [(c["event"], c["detail"]) for c in env.records(Topic.CONTINUITY)]
    assert [e for e, _ in events] == ["status_change", "status_change"]
    assert "online -> maintenance" in events[0][1] and "maintenance -> online" in events[1][1]
    assert env.records(Topic.STATUS) == [] and env.records(Topic.INSTRUMENT) == []  # not asked for
    assert env.pipe.precisions["BTC/USD"].price == 1  # but instrument data is used
    env2 = Env()
    env2.feed(status % "online")
    assert len(env2.records(Topic.STATUS)) == 1 and env2.records(Topic.CONTINUITY) == []


def test_connection_events_become_continuity_records() -> None:
    env = Env()
    conn = FakeConn(channels=("book", "trade"), symbols=("BTC/USD", "ETH/USD"))
    pipe = env.pipe
    pipe.on_event(conn, ConnEvent("connect", "first frame", gap_end=5))  # type: ignore[arg-type]
    pipe.on_event(conn, ConnEvent("disconnect", "closed by server", "book,trade", None, 10))  # type: ignore[arg-type]
    pipe.on_event(conn, ConnEvent("reconnect", "back", None, None, 10, 20))  # type: ignore[arg-type]
    pipe.on_event(conn, ConnEvent("stale_feed", "no frame for 15s", "book,trade", None, 30))  # type: ignore[arg-type]
    pipe.on_event(conn, ConnEvent("subscribe_rejected", "Currency pair not supported", "book", "X/Y"))  # type: ignore[arg-type]
    recs = env.records(Topic.CONTINUITY)
    summary = [(r["event"], r["symbol"], r["gap_start"], r["gap_end"]) for r in recs]
    assert summary == [
        ("connect", None, None, 5),
        ("disconnect", None, 10, None),
        ("reconnect", None, 10, 20),
        ("reconnect", "BTC/USD", 10, 20),
        ("reconnect", "ETH/USD", 10, 20),
        ("resubscribe", None, 10, 20),
        ("stale_feed", None, 30, None),
        ("subscribe_rejected", "X/Y", None, None),
    ]
    assert recs[3]["channel"] == "book,trade" and "public-1" in recs[0]["detail"]
    assert pipe.reconnects == {"public-1": 1}


def test_ticker_records_carry_the_connection_event_trigger() -> None:
    env = Env()
    env.conn.event_trigger = "bbo"
    env.feed(
        '{"channel":"ticker","type":"update","data":[{"symbol":"ALGO/USD","bid":0.10025,"bid_qty":740.0,'
        '"ask":0.10035,"ask_qty":740.0,"last":0.10035,"volume":997038.98383185,"vwap":0.10148,"low":0.09979,'
        '"high":0.10285,"change":-0.00017,"change_pct":-0.17,"timestamp":"2023-09-25T09:04:31.742648Z"}]}'
    )
    [rec] = env.records(Topic.TICKER)
    assert rec["event_trigger"] == "bbo" and rec["bid_qty"] == "740.0"
