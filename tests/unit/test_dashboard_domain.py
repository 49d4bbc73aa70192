"""The dashboard's pure view state (consumers.dashboard.domain), its settings, and its web layer
served in-process on 127.0.0.1 (no Kafka): exact values, bounded memory, coalescing, order P&L,
feed health, snapshots and deltas over the WebSocket, and a page that works offline."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from consumers.dashboard.domain import (
    GLOBAL,
    Coalescer,
    DashboardState,
    Limits,
    StrategyRow,
    book_view,
    decimal_text,
)
from consumers.dashboard.settings import DashboardSettings
from consumers.dashboard.web import QUEUE_SIZE, DashboardServer, Page, static_dir
from kracked.errors import ConfigError
from schemas.topics import Topic

MIN = 60_000_000


def top(
    symbol: str = "BTC/USD", bid: str = "65000.1", ask: str = "65000.2", ok: bool = True, ts: int = 1
) -> dict:
    return {
        "symbol": symbol,
        "kind": "l2",
        "depth": 10,
        "bids": [{"price": bid, "qty": "0.50000000"}, {"price": "64999.0", "qty": "1.25000000"}],
        "asks": [{"price": ask, "qty": "0.10000000"}, {"price": "65001.0", "qty": "2.00000000"}],
        "checksum": 42,
        "checksum_ok": ok,
        "valid": ok,
        "epoch": 2,
        "price_precision": 1,
        "qty_precision": 8,
        "ts_event": ts,
        "ts_recv": ts,
        "ts": ts,
        "source_topic": "kraken.book",
        "source_partition": 0,
        "source_offset": 7,
    }


def bar(start: int, close: str = "100.0", symbol: str = "BTC/USD", interval: int = 60, tid: int = 10) -> dict:
    return {
        "symbol": symbol,
        "interval_s": interval,
        "start": start,
        "end": start + interval * 1_000_000,
        "open": "99.0",
        "high": "101.0",
        "low": "98.0",
        "close": close,
        "volume": "1.0",
        "buy_volume": "0.5",
        "sell_volume": "0.5",
        "vwap": "100.0",
        "trade_count": 2,
        "first_trade_id": tid - 1,
        "last_trade_id": tid,
        "source_partition": 0,
        "first_offset": 0,
        "last_offset": 1,
        "ts": start + interval * 1_000_000,
    }


def spread(start: int, close: str = "0.1", symbol: str = "BTC/USD") -> dict:
    return {
        "symbol": symbol,
        "interval_s": 60,
        "start": start,
        "end": start + MIN,
        "source": "book.top",
        "open": close,
        "close": close,
        "min": close,
        "max": close,
        "twa": close,
        "open_bps": "0.0154",
        "close_bps": "0.0154",
        "min_bps": "0.0154",
        "max_bps": "0.0154",
        "twa_bps": "0.0154",
        "sample_count": 3,
        "ts": start + MIN,
    }


def order(sid: str, side: str = "buy", qty: str | None = "1", price: str | None = "100", **kw: Any) -> dict:
    rec = {
        "signal_id": sid,
        "strategy": "s1",
        "symbol": "BTC/USD",
        "side": side,
        "order_type": "limit",
        "quantity": qty or "1",
        "limit_price": "99.5",
        "trigger_price": None,
        "status": "acknowledged",
        "reason": None,
        "mode": "live",
        "exchange_order_id": None,
        "client_order_id": "c",
        "request": None,
        "attempts": 1,
        "ts_signal": 1,
        "ts_received": 2,
        "ts_sent": 3,
        "ts_done": 4,
        "source_partition": None,
        "source_offset": None,
        "filled_qty": qty,
        "avg_price": price,
        "prior_status": None,
    }
    rec.update(kw)
    return rec


def cont(event: str, symbol: str | None = None, **kw: Any) -> dict:
    rec = {
        "event": event,
        "source": "connector",
        "channel": None,
        "symbol": symbol,
        "gap_start": None,
        "gap_end": None,
        "expected": None,
        "received": None,
        "epoch": None,
        "detail": event,
        "ts": 5,
    }
    rec.update(kw)
    return rec


# ---- book ------------------------------------------------------------------------------------------
def test_book_view_keeps_exact_strings_and_sums_depth_exactly() -> None:
    view = book_view(top())
    assert view["bids"] == [["65000.1", "0.50000000", "0.5"], ["64999.0", "1.25000000", "1.75"]]
    assert view["asks"] == [["65000.2", "0.10000000", "0.1"], ["65001.0", "2.00000000", "2.1"]]
    assert view["spread"] == "0.1"  # exact: 65000.2 - 65000.1 in float is 0.09999999999854481
    assert view["verdict"] == "verified" and view["epoch"] == 2
    assert view["source"] == "kraken.book[0]@7"


@pytest.mark.parametrize(("ok", "valid"), [(False, False), (False, True), (True, False)])
def test_a_book_without_a_verified_checksum_is_unverified(ok: bool, valid: bool) -> None:
    view = book_view({**top(), "checksum_ok": ok, "valid": valid})
    assert view["verdict"] == "unverified"
    assert view["verdict_reason"]


# ---- coalescing ------------------------------------------------------------------------------------
def test_coalescer_pushes_at_most_k_per_second_per_key() -> None:
    c = Coalescer(max_per_s=10)
    pushes = 0
    for ms in range(1000):  # 50 updates/s, polled every ms for one second
        if ms % 20 == 0:
            c.mark("BTC/USD")
        pushes += len(c.due(ms * 1000))
    assert 1 < pushes <= 10
    with pytest.raises(ValueError):
        Coalescer(0)


def test_a_burst_becomes_few_pushes_carrying_the_latest_book() -> None:
    state = DashboardState(max_push_hz=10)
    seen: list[dict] = []
    for k in range(50):  # 50 updates in one second, collected every 10 ms
        state.apply(Topic.BOOK_TOP, top(bid=f"650{k:02d}.1", ts=k))
        for t in range(2):
            seen += [m for key, m in state.collect((k * 2 + t) * 10_000) if key == "BTC/USD"]
    seen += [m for key, m in state.collect(10**7) if key == "BTC/USD"]
    assert len(seen) <= 11
    assert seen[-1]["book"]["bids"][0][0] == "65049.1"  # latest wins
    assert state.collect(2 * 10**7) == []  # nothing new, nothing pushed


def test_delta_carries_only_what_changed() -> None:
    state = DashboardState(max_push_hz=1000)
    state.apply(Topic.BOOK_TOP, top())
    state.apply(Topic.BARS, bar(0))
    first = dict(state.collect(1))
    assert set(first) == {GLOBAL, "BTC/USD"}
    assert first[GLOBAL]["symbols"] == ["BTC/USD"] and "health" not in first[GLOBAL]
    assert "book" in first["BTC/USD"] and len(first["BTC/USD"]["bars"]) == 1
    state.apply(Topic.BARS, bar(MIN, close="101.5", tid=12))
    second = dict(state.collect(10_000))
    assert set(second) == {"BTC/USD"}
    assert "book" not in second["BTC/USD"]
    assert [b["close"] for b in second["BTC/USD"]["bars"]] == ["101.5"]
    assert second["BTC/USD"]["trade"]["price"] == "101.5"  # last trade from the bar's close


# ---- bars, spreads, trades: bounded -----------------------------------------------------------------
def test_bars_are_bounded_per_interval_and_upserted_by_start() -> None:
    state = DashboardState(Limits(bars_per_interval=5, spread_points=4, markers=3))
    for k in range(20):
        state.apply(Topic.BARS, bar(k * MIN, close=f"{k}.0", tid=k + 1))
        state.apply(Topic.BARS, bar(k * 5 * MIN, interval=300, tid=k + 1))
        state.apply(Topic.SPREAD, spread(k * MIN))
    state.apply(Topic.BARS, bar(19 * MIN, close="19.5", tid=99))  # the open bar re-published
    state.apply(Topic.BARS, bar(2 * MIN, tid=3))  # older than everything kept: ignored
    view = state.views["BTC/USD"]
    assert list(view.bars[60].keys()) == [15 * MIN, 16 * MIN, 17 * MIN, 18 * MIN, 19 * MIN]
    assert view.bars[60][19 * MIN]["close"] == "19.5"
    assert len(view.bars[300]) == 5 and len(view.spreads[60]) == 4
    snap = state.snapshot("BTC/USD")
    assert snap is not None and snap["full"] and len(snap["bars"]) == 10
    for k in range(10):
        state.apply(Topic.ORDERS, order(f"o{k}"))
    assert len(view.markers) == 3
    assert state.sizes()["per_symbol"]["BTC/USD"] == {"bars": 10, "spread": 4, "markers": 3}


def test_last_trade_prefers_the_newest_trade_id() -> None:
    state = DashboardState()
    trade = {
        "symbol": "BTC/USD",
        "type": "update",
        "side": "sell",
        "price": "65000.3",
        "qty": "0.01000000",
        "ord_type": "market",
        "trade_id": 50,
        "ts_event": 9,
        "ts_recv": 10,
    }
    state.apply(Topic.TRADE, trade)
    state.apply(Topic.BARS, bar(0, close="1.0", tid=40))  # older trade id: not the last trade
    assert state.views["BTC/USD"].trade == {
        "price": "65000.3",
        "qty": "0.01000000",
        "side": "sell",
        "trade_id": 50,
        "ts": 9,
        "from": "trade",
    }
    state.apply(Topic.TRADE, {**trade, "trade_id": 49, "price": "1"})  # a replayed older trade
    assert state.views["BTC/USD"].trade["price"] == "65000.3"
    state.apply(Topic.BARS, bar(MIN, close="65001.0", tid=51))
    assert state.views["BTC/USD"].trade["price"] == "65001.0"


# ---- orders ----------------------------------------------------------------------------------------
def test_order_table_counts_the_latest_status_per_signal() -> None:
    state = DashboardState()
    state.apply(Topic.ORDERS, order("a", status="submitted", qty=None, price=None))
    state.apply(Topic.ORDERS, order("a", status="acknowledged", qty="1", price="100"))
    state.apply(Topic.ORDERS, order("b", mode="dry-run", status="dry-run", qty=None, price=None))
    state.apply(Topic.ORDERS, order("c", status="rejected", reason="max notional", qty=None, price=None))
    state.apply(
        Topic.ORDERS, order("a", status="duplicate", prior_status="acknowledged", qty=None, price=None)
    )
    (row,) = state.ledger.view()["rows"]
    assert row["statuses"] == {"acknowledged": 1, "dry-run": 1, "rejected": 1}
    assert row["modes"] == {"dry-run": 1, "live": 2}
    assert row["orders"] == 3 and row["duplicates"] == 1
    assert row["fills"] == 1 and row["filled_qty"] == "1" and row["notional"] == "100"
    markers = state.views["BTC/USD"].markers
    assert set(markers) == {"a", "b", "c"}
    assert markers["a"]["live"] and not markers["b"]["live"]
    assert markers["b"]["price"] == "99.5"  # no fill: drawn at its limit price
    assert markers["a"]["price"] == "100" and markers["a"]["effect"] == "entry"
    recent = state.ledger.view()["recent"]
    assert [r["id"] for r in recent] == ["a", "c", "b"]


def test_realised_pnl_by_average_cost_long_then_flip_short() -> None:
    state = DashboardState()
    state.apply(Topic.ORDERS, order("1", "buy", "1", "100"))
    state.apply(Topic.ORDERS, order("2", "buy", "1", "110"))  # long 2 @ 105
    state.apply(Topic.ORDERS, order("3", "sell", "1.5", "120"))  # realises 1.5 x 15
    row = state.ledger.view()["rows"][0]
    assert (row["position"], row["avg_cost"], row["realised_pnl"]) == ("0.5", "105", "22.5")
    state.apply(Topic.ORDERS, order("4", "sell", "1", "100"))  # closes 0.5 (-2.5), opens short 0.5 @ 100
    row = state.ledger.view()["rows"][0]
    assert (row["position"], row["avg_cost"], row["realised_pnl"]) == ("-0.5", "100", "20")
    assert state.views["BTC/USD"].markers["4"]["effect"] == "exit"
    state.apply(Topic.ORDERS, order("5", "buy", "0.5", "90"))  # short closed: +5
    row = state.ledger.view()["rows"][0]
    assert (row["position"], row["avg_cost"], row["realised_pnl"]) == ("0", None, "25")
    assert row["filled_qty"] == "5" and row["notional"] == "535"


def test_a_fill_is_counted_once_and_partial_fills_by_their_increment() -> None:
    state = DashboardState()
    state.apply(Topic.ORDERS, order("x", "buy", "0.5", "100"))
    state.apply(Topic.ORDERS, order("x", "buy", "0.5", "100"))  # same record again
    state.apply(Topic.ORDERS, order("x", "buy", "1", "101"))  # filled further: +0.5 worth 51
    row = state.ledger.rows[("s1", "BTC/USD")]
    assert row.filled_qty == Decimal("1") and row.notional == Decimal("101")
    assert row.position == Decimal("1") and row.fills == 2
    assert state.ledger.view()["rows"][0]["orders"] == 1


def test_strategy_row_short_pnl_and_inexact_average_is_rounded_not_floated() -> None:
    row = StrategyRow("s", "X/Y")
    row.fill(-1, Decimal("3"), Decimal("100"))  # short 3 for 100 in total (avg 33.333...)
    row.fill(1, Decimal("1"), Decimal("30"))  # buy back 1 at 30
    view = row.view()
    assert view["realised_pnl"] == "3.3333333333"
    assert view["position"] == "-2" and view["avg_cost"] == "33.3333333333"
    assert decimal_text(Decimal("1.50000")) == "1.5" and decimal_text(Decimal("0E-8")) == "0"


def test_orders_memory_is_bounded() -> None:
    state = DashboardState(Limits(max_orders=10, recent_orders=4))
    for k in range(100):
        state.apply(Topic.ORDERS, order(f"s{k}"))
    assert len(state.ledger.orders) == 10 and len(state.ledger.recent) == 4
    assert state.ledger.view()["rows"][0]["orders"] == 100  # the table still counts every one


# ---- health ----------------------------------------------------------------------------------------
def test_health_counts_gaps_reconnects_and_checksum_resyncs() -> None:
    state = DashboardState(Limits(recent_events=3))
    state.apply(Topic.CONTINUITY, cont("connect"))
    state.apply(Topic.CONTINUITY, cont("disconnect"))
    state.apply(Topic.CONTINUITY, cont("reconnect", gap_start=1, gap_end=2))
    state.apply(Topic.CONTINUITY, cont("trade_id_gap", "BTC/USD", channel="trade", expected=5, received=9))
    state.apply(Topic.CONTINUITY, cont("checksum_mismatch", "ETH/USD", channel="book"))
    state.apply(Topic.CONTINUITY, cont("stale_feed", "ETH/USD", channel="ticker"))
    health = state.health.view()
    assert (health["reconnects"], health["gaps"], health["resyncs"]) == (1, 3, 1)
    assert health["connections"] == {"connector": {"state": "up", "since": 5, "event": "reconnect"}}
    assert [e["event"] for e in health["recent"]] == ["stale_feed", "checksum_mismatch", "trade_id_gap"]
    assert state.views["BTC/USD"].health["gaps"] == 1
    assert state.views["ETH/USD"].health["resyncs"] == 1
    assert state.symbols() == ["BTC/USD", "ETH/USD"]


def test_a_first_connect_with_only_gap_end_is_not_a_gap() -> None:
    # the connector's first `connect` says when data begins (gap_end) but nothing is missing
    state = DashboardState(Limits(recent_events=3))
    state.apply(Topic.CONTINUITY, cont("connect", gap_end=2))
    assert state.health.view()["gaps"] == 0
    state.apply(Topic.CONTINUITY, cont("disconnect", gap_start=3))
    assert state.health.view()["gaps"] == 1


def test_lag_and_consumer_state_mark_health_only_when_they_change() -> None:
    state = DashboardState(max_push_hz=1000)
    state.set_lag({"kracked.bars": 3})
    state.set_consumer("up")
    (key, msg), *_ = state.collect(1)
    assert key == GLOBAL and msg["health"]["lag"] == {"kracked.bars": 3}
    assert msg["health"]["consumer"]["state"] == "up"
    state.set_lag({"kracked.bars": 3})
    state.set_consumer("up")
    assert state.collect(10**6) == []
    state.count_records(5)  # counted now, shown with the next lag update
    assert state.collect(2 * 10**6) == []
    state.set_lag({"kracked.bars": 3})
    (_key, msg), *_ = state.collect(3 * 10**6)
    assert msg["health"]["consumer"]["records"] == 5


# ---- settings --------------------------------------------------------------------------------------
def test_settings_from_env_and_errors() -> None:
    s = DashboardSettings.from_env({"KRACKED_DASHBOARD_PORT": "9000", "KRACKED_DASHBOARD_MAX_PUSH_HZ": "4"})
    assert (s.host, s.port, s.max_push_hz, s.window_minutes) == ("127.0.0.1", 9000, 4.0, 60)
    assert DashboardSettings.from_env({}, port=0).port == 0
    for env in (
        {"KRACKED_DASHBOARD_PORT": "x"},
        {"KRACKED_DASHBOARD_PORT": "70000"},
        {"KRACKED_DASHBOARD_MAX_PUSH_HZ": "0"},
        {"KRACKED_DASHBOARD_WINDOW_MINUTES": "-1"},
        {"KRACKED_DASHBOARD_BARS": "0"},
    ):
        with pytest.raises(ConfigError):
            DashboardSettings.from_env(env)


# ---- web layer (in-process on 127.0.0.1, no Kafka) -------------------------------------------------
def test_page_and_static_files_are_served_and_reference_nothing_external() -> None:
    for path in static_dir().iterdir():
        text = path.read_text()
        assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", text), path.name
        assert "import(" not in text and "@import" not in text, path.name
        assert not re.search(r"https?://", text), path.name

    async def run() -> None:
        server = DashboardServer(DashboardState(), threading.Lock(), DashboardSettings(port=0))
        port = await server.start()
        try:
            async with aiohttp.ClientSession() as http:
                async with http.get(f"http://127.0.0.1:{port}/") as resp:
                    page = await resp.text()
                    assert resp.status == 200 and "/static/app.js" in page
                for name in ("app.js", "charts.js", "style.css"):
                    async with http.get(f"http://127.0.0.1:{port}/static/{name}") as resp:
                        assert resp.status == 200, name
                async with http.get(f"http://127.0.0.1:{port}/state") as resp:
                    assert (await resp.json())["symbols"] == []
        finally:
            await server.stop()

    asyncio.run(run())


def test_websocket_sends_snapshots_of_opened_symbols_then_coalesced_deltas() -> None:
    state, lock = DashboardState(max_push_hz=20), threading.Lock()
    state.apply(Topic.BOOK_TOP, top())
    state.apply(Topic.BARS, bar(0))
    state.apply(Topic.BOOK_TOP, top("ETH/USD", "3200.01", "3200.50"))

    async def recv(ws: aiohttp.ClientWebSocketResponse) -> dict:
        return json.loads(await asyncio.wait_for(ws.receive_str(), 10))

    async def run() -> None:
        server = DashboardServer(state, lock, DashboardSettings(port=0, max_push_hz=20))
        port = await server.start()
        try:
            async with aiohttp.ClientSession() as http, http.ws_connect(f"http://127.0.0.1:{port}/ws") as ws:
                hello = await recv(ws)
                assert hello["type"] == "global" and hello["symbols"] == ["BTC/USD", "ETH/USD"]
                assert hello["limits"]["bars_per_interval"] == 500 and "health" in hello
                await ws.send_str(json.dumps({"op": "open", "symbols": ["BTC/USD"]}))
                snap = await recv(ws)
                assert snap["full"] and snap["symbol"] == "BTC/USD"
                assert snap["book"]["bids"][0][:2] == ["65000.1", "0.50000000"] and len(snap["bars"]) == 1
                for k in range(30):  # a burst on both symbols; only BTC/USD is open
                    with lock:
                        state.apply(Topic.BOOK_TOP, top(bid=f"650{k:02d}.5"))
                        state.apply(Topic.BOOK_TOP, top("ETH/USD", bid=f"31{k:02d}.00"))
                while True:
                    msg = await recv(ws)
                    if msg["type"] == "symbol":
                        assert msg["symbol"] == "BTC/USD" and not msg["full"]
                        if msg["book"]["bids"][0][0] == "65029.5":
                            break
                await ws.send_str("not json")  # ignored, the connection stays up
                await ws.send_str(json.dumps({"op": "open", "symbols": ["BTC/USD", "ETH/USD"]}))
                snap = await recv(ws)
                while snap["type"] != "symbol" or not snap["full"]:
                    snap = await recv(ws)
                assert snap["symbol"] == "ETH/USD" and snap["book"]["bids"][0][0] == "3129.00"
        finally:
            await server.stop()

    asyncio.run(run())


def test_a_page_that_falls_behind_is_resynced_instead_of_queueing_forever() -> None:
    async def run() -> None:
        page = Page(ws=None)  # type: ignore[arg-type]
        for k in range(QUEUE_SIZE + 50):
            page.offer(f"msg {k}")
        assert page.queue.qsize() <= QUEUE_SIZE and page.resyncs >= 1
        items = [page.queue.get_nowait() for _ in range(page.queue.qsize())]
        assert not any(i == "msg 0" for i in items)  # stale messages were dropped

    asyncio.run(run())
