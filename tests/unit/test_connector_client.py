"""connector.kraken.client: subscriptions, acks, rejections, reconnects, watchdog, ping, back-pressure.

Kraken is played by a small aiohttp WebSocket server on 127.0.0.1 (port 0) that speaks just enough v2:
status on connect, one ack per symbol (errors for chosen symbols), pong, and frames the test pushes.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiohttp
import pytest
from aiohttp import web

from connector.kraken.auth import Credentials
from connector.kraken.client import (
    Backoff,
    Connection,
    ConnectionOptions,
    ConnectionSpec,
    ConnectLimiter,
    ConnEvent,
    Subscription,
    is_permanent_rejection,
    plan_connections,
)
from connector.kraken.messages import DataMessage, ParseError

T = TypeVar("T")
SECRET = "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg=="
STATUS = '{"channel":"status","type":"update","data":[{"api_version":"v2","connection_id":1,"system":"online","version":"2.0.0"}]}'


def run(coro: Awaitable[T], timeout: float = 30) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


def trade(symbol: str, trade_id: int) -> str:
    return json.dumps(
        {
            "channel": "trade",
            "type": "update",
            "data": [
                {
                    "symbol": symbol,
                    "side": "buy",
                    "price": 1.5,
                    "qty": 2.0,
                    "ord_type": "limit",
                    "trade_id": trade_id,
                    "timestamp": "2023-09-25T07:49:37.708706Z",
                }
            ],
        }
    )


class FakeKraken:
    """Minimal Kraken v2 server: records requests, acks per symbol, pongs; tests push frames/faults."""

    def __init__(self, reject: dict[str, str] | None = None, token: str | None = None) -> None:
        self.reject = reject or {}
        self.token = token
        self.requests: list[dict[str, Any]] = []
        self.sockets: list[web.WebSocketResponse] = []
        self.connected = asyncio.Event()
        self.connections = 0
        self.silent = False
        self.tokens_issued = 0
        self._runner: web.AppRunner | None = None
        self.url = ""
        self.rest_url = ""

    async def __aenter__(self) -> FakeKraken:
        app = web.Application()
        app.router.add_get("/v2", self._ws)
        app.router.add_post("/0/private/GetWebSocketsToken", self._token)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        port = self._runner.addresses[0][1]
        self.url = f"ws://127.0.0.1:{port}/v2"
        self.rest_url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        for ws in self.sockets:
            await ws.close()
        assert self._runner is not None
        await self._runner.cleanup()

    async def _token(self, request: web.Request) -> web.Response:
        self.tokens_issued += 1
        if request.headers.get("API-Key") != "good-key":
            return web.json_response({"error": ["EAPI:Invalid key"]})
        return web.json_response(
            {"error": [], "result": {"token": f"tok{self.tokens_issued}", "expires": 900}}
        )

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self.connections += 1
        self.sockets.append(ws)
        await ws.send_str(STATUS)
        self.connected.set()
        async for msg in ws:
            req = json.loads(msg.data)
            self.requests.append(req)
            if self.silent:
                continue
            if req["method"] == "ping":
                await ws.send_str(json.dumps({"method": "pong", "req_id": req["req_id"]}))
                continue
            params = req["params"]
            for symbol in params.get("symbol") or [None]:
                if symbol in self.reject:
                    reply = {"error": self.reject[symbol], "method": req["method"], "req_id": req["req_id"]}
                    reply |= {"success": False, "symbol": symbol}
                else:
                    result = {"channel": params["channel"], **({"symbol": symbol} if symbol else {})}
                    reply = {
                        "method": req["method"],
                        "req_id": req["req_id"],
                        "result": result,
                        "success": True,
                    }
                await ws.send_str(json.dumps(reply))
        return ws

    async def push(self, text: str) -> None:
        await self.sockets[-1].send_str(text)

    async def drop(self) -> None:
        """Close the newest socket abruptly."""
        ws = self.sockets[-1]
        transport = ws._req.transport if ws._req is not None else None
        if transport is not None:
            transport.abort()

    def sent(self, method: str, channel: str | None = None) -> list[dict[str, Any]]:
        return [
            r
            for r in self.requests
            if r["method"] == method and (channel is None or r["params"]["channel"] == channel)
        ]


class Recorder:
    """Handler that records everything and lets a test wait for a condition."""

    def __init__(self) -> None:
        self.messages: list[DataMessage] = []
        self.malformed: list[str] = []
        self.events: list[ConnEvent] = []

    def on_frame(self, conn: Connection, raw: str | bytes, ts_recv: int) -> bool:
        return False  # every frame through the connection's parser

    def on_message(self, conn: Connection, msg: DataMessage, raw: str, ts_recv: int) -> None:
        self.messages.append(msg)

    def on_malformed(self, conn: Connection, raw: str | bytes, error: ParseError, ts_recv: int) -> None:
        self.malformed.append(str(raw))

    def on_event(self, conn: Connection, event: ConnEvent) -> None:
        self.events.append(event)

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]

    async def until(self, check: Callable[[], bool], timeout: float = 10) -> None:
        """Poll `check` (it may look at the server's state, which sets no event here)."""

        async def wait() -> None:
            while not check():
                await asyncio.sleep(0.005)

        await asyncio.wait_for(wait(), timeout)


def _options(**kw: Any) -> ConnectionOptions:
    base: dict[str, Any] = {
        "watchdog_seconds": 5.0,
        "ping_seconds": 30.0,
        "backoff": Backoff(base=0.01, cap=0.05),
        "stable_seconds": 0.0,
    }
    base.update(kw)
    return ConnectionOptions(**base)


async def _connection(
    server: FakeKraken,
    subs: tuple[Subscription, ...],
    recorder: Recorder,
    session: aiohttp.ClientSession,
    **kw: Any,
) -> tuple[Connection, asyncio.Event, asyncio.Task[None]]:
    private = kw.pop("private", False)
    spec = ConnectionSpec("test", server.url, subs, private=private, event_trigger="trades")
    conn = Connection(
        spec,
        recorder,
        session,
        limiter=kw.pop("limiter", ConnectLimiter(100, 60)),
        options=kw.pop("options", _options()),
        rest_url=server.rest_url,
        **kw,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(conn.run(stop))
    return conn, stop, task


BOOK = Subscription("book", ("BTC/USD", "ETH/USD", "BAD/USD"), (("depth", 10), ("snapshot", True)))


def test_one_rejected_symbol_is_reported_and_the_others_stay_subscribed() -> None:
    async def body() -> tuple[Recorder, Connection, FakeKraken]:
        rec = Recorder()
        async with (
            FakeKraken(reject={"BAD/USD": "Currency pair not supported BAD/USD"}) as server,
            aiohttp.ClientSession() as session,
        ):
            conn, stop, task = await _connection(server, (BOOK,), rec, session)
            await rec.until(lambda: "subscribe_rejected" in rec.kinds() and len(conn.active) == 2)
            await server.push(trade("BTC/USD", 1))
            await rec.until(lambda: len(rec.messages) >= 2)  # status + trade: reading goes on
            stop.set()
            await task
            return rec, conn, server

    rec, conn, server = run(body())
    [sub] = server.sent("subscribe")
    assert sub["params"] == {
        "channel": "book",
        "symbol": ["BTC/USD", "ETH/USD", "BAD/USD"],
        "depth": 10,
        "snapshot": True,
    }
    assert isinstance(sub["req_id"], int) and 0 < sub["req_id"] < 2**31
    rejected = [e for e in rec.events if e.kind == "subscribe_rejected"]
    assert [(e.channel, e.symbol) for e in rejected] == [("book", "BAD/USD")]
    assert "Currency pair not supported" in rejected[0].detail and "skipped" in rejected[0].detail
    assert conn.active == {("book", "BTC/USD", None), ("book", "ETH/USD", None)}
    assert conn.wanted_symbols("book") == ["BTC/USD", "ETH/USD"]
    assert [e.kind for e in rec.events] == ["connect", "subscribe_rejected", "disconnect"]


def test_drop_reconnects_resubscribes_and_reports_the_gap() -> None:
    async def body() -> tuple[Recorder, FakeKraken, Connection]:
        rec = Recorder()
        async with (
            FakeKraken(reject={"BAD/USD": "Currency pair not supported BAD/USD"}) as server,
            aiohttp.ClientSession() as session,
        ):
            conn, stop, task = await _connection(server, (BOOK,), rec, session)
            await rec.until(lambda: len(conn.active) == 2)
            await server.drop()
            await rec.until(lambda: "reconnect" in rec.kinds() and len(server.sent("subscribe")) == 2)
            await rec.until(lambda: len(conn.active) == 2)
            stop.set()
            await task
            return rec, server, conn

    rec, server, conn = run(body())
    assert server.connections == 2
    first, second = server.sent("subscribe")
    assert first["params"]["symbol"] == ["BTC/USD", "ETH/USD", "BAD/USD"]
    assert second["params"]["symbol"] == ["BTC/USD", "ETH/USD"]  # the permanently rejected one is skipped
    disconnect = next(e for e in rec.events if e.kind == "disconnect")
    reconnect = next(e for e in rec.events if e.kind == "reconnect")
    assert disconnect.gap_start is not None
    assert reconnect.gap_start == disconnect.gap_start
    assert reconnect.gap_end is not None and reconnect.gap_end >= reconnect.gap_start
    assert conn.connects == 2


def test_transient_rejection_is_retried_after_the_next_reconnect() -> None:
    assert not is_permanent_rejection("EService:Unavailable")
    assert is_permanent_rejection("Currency pair not supported X/Y")

    async def body() -> FakeKraken:
        rec = Recorder()
        async with (
            FakeKraken(reject={"BAD/USD": "EService:Unavailable"}) as server,
            aiohttp.ClientSession() as session,
        ):
            conn, stop, task = await _connection(server, (BOOK,), rec, session)
            await rec.until(lambda: "subscribe_rejected" in rec.kinds())
            server.reject.clear()
            await server.drop()
            await rec.until(lambda: len(conn.active) == 3)
            stop.set()
            await task
            return server

    server = run(body())
    assert sorted(server.sent("subscribe")[1]["params"]["symbol"]) == ["BAD/USD", "BTC/USD", "ETH/USD"]


def test_watchdog_reconnects_a_silent_feed() -> None:
    async def body() -> tuple[Recorder, FakeKraken]:
        rec = Recorder()
        async with FakeKraken() as server:
            server.silent = True  # no acks, no heartbeats: only the status frame
            async with aiohttp.ClientSession() as session:
                opts = _options(watchdog_seconds=0.3)
                _conn, stop, task = await _connection(server, (BOOK,), rec, session, options=opts)
                await rec.until(lambda: "stale_feed" in rec.kinds() and server.connections >= 2)
                stop.set()
                await task
                return rec, server

    rec, _server = run(body())
    stale = next(e for e in rec.events if e.kind == "stale_feed")
    assert stale.gap_start is not None and "no frame for 0.3s" in stale.detail
    kinds = rec.kinds()
    assert kinds.index("stale_feed") < kinds.index("disconnect")


def test_resubscribe_one_symbol_sends_unsubscribe_then_subscribe() -> None:
    async def body() -> tuple[Recorder, FakeKraken, bool, bool]:
        rec = Recorder()
        async with FakeKraken() as server, aiohttp.ClientSession() as session:
            conn, stop, task = await _connection(server, (BOOK,), rec, session)
            await rec.until(lambda: len(conn.active) == 3)
            ok = conn.resubscribe("book", "ETH/USD", "checksum mismatch")
            unknown = conn.resubscribe("book", "DOGE/USD", "checksum mismatch")
            await rec.until(lambda: len(server.sent("subscribe")) == 2)
            stop.set()
            await task
            return rec, server, ok, unknown

    rec, server, ok, unknown = run(body())
    assert ok and not unknown
    [unsub] = server.sent("unsubscribe")
    assert unsub["params"] == {"channel": "book", "symbol": ["ETH/USD"], "depth": 10}
    resub = server.sent("subscribe")[1]
    assert resub["params"] == {"channel": "book", "symbol": ["ETH/USD"], "depth": 10, "snapshot": True}
    assert server.requests.index(unsub) < server.requests.index(resub)
    event = next(e for e in rec.events if e.kind == "resubscribe")
    assert (event.channel, event.symbol, event.detail) == ("book", "ETH/USD", "checksum mismatch")


def test_pings_keep_the_connection_alive_and_pongs_stay_internal() -> None:
    async def body() -> tuple[Recorder, FakeKraken]:
        rec = Recorder()
        async with FakeKraken() as server, aiohttp.ClientSession() as session:
            opts = _options(ping_seconds=0.05)
            conn, stop, task = await _connection(server, (BOOK,), rec, session, options=opts)
            await rec.until(lambda: len(conn.active) == 3)
            while len(server.sent("ping")) < 3 or conn.pongs < 3:  # pongs are counted, not handled
                await asyncio.sleep(0.02)
            stop.set()
            await task
            return rec, server

    rec, server = run(body())
    ids = [p["req_id"] for p in server.sent("ping")]
    assert len(set(ids)) == len(ids)
    assert all(type(m).__name__ == "StatusMessage" for m in rec.messages)  # no pong reached the handler


def test_malformed_frames_go_to_the_handler_and_reading_continues() -> None:
    async def body() -> Recorder:
        rec = Recorder()
        async with FakeKraken() as server, aiohttp.ClientSession() as session:
            conn, stop, task = await _connection(server, (BOOK,), rec, session)
            await rec.until(lambda: len(conn.active) == 3)
            await server.push("{broken")
            await server.push(trade("BTC/USD", 7))
            await rec.until(lambda: len(rec.messages) == 2)
            stop.set()
            await task
            return rec

    rec = run(body())
    assert rec.malformed == ["{broken"]


class Gate:
    """Back-pressure stand-in: blocked until the test releases it."""

    def __init__(self) -> None:
        self.blocked = False
        self.released = asyncio.Event()

    async def wait_writable(self) -> None:
        await self.released.wait()
        self.blocked = False


def test_backpressure_stops_reading_and_the_watchdog_does_not_count_it() -> None:
    async def body() -> tuple[Recorder, int, int]:
        rec = Recorder()
        gate = Gate()
        async with FakeKraken() as server:
            server.silent = True
            async with aiohttp.ClientSession() as session:
                opts = _options(watchdog_seconds=0.2)
                _conn, stop, task = await _connection(server, (BOOK,), rec, session, options=opts, gate=gate)
                await rec.until(lambda: len(rec.messages) == 1)  # the status frame
                gate.blocked = True
                await server.push(trade("BTC/USD", 1))
                await rec.until(lambda: len(rec.messages) == 2)  # handled, then the reader waits on the gate
                for i in range(2, 6):
                    await server.push(trade("BTC/USD", i))
                await asyncio.sleep(0.6)  # three watchdog periods while blocked
                read_while_blocked = len(rec.messages)
                gate.released.set()
                await rec.until(lambda: len(rec.messages) == 6)
                stop.set()
                await task
                return rec, read_while_blocked, server.connections

    rec, read_while_blocked, connections = run(body())
    assert read_while_blocked == 2
    assert connections == 1 and "stale_feed" not in rec.kinds()


def test_private_connection_fetches_a_token_for_every_session() -> None:
    async def body() -> FakeKraken:
        rec = Recorder()
        sub = Subscription("executions", (), (("snap_orders", True), ("snap_trades", True)), private=True)
        async with FakeKraken() as server, aiohttp.ClientSession() as session:
            conn, stop, task = await _connection(
                server, (sub,), rec, session, private=True, credentials=Credentials("good-key", SECRET)
            )
            await rec.until(lambda: len(conn.active) == 1)
            await server.drop()
            await rec.until(lambda: len(server.sent("subscribe")) == 2)
            stop.set()
            await task
            return server

    server = run(body())
    tokens = [r["params"]["token"] for r in server.sent("subscribe")]
    assert tokens == ["tok1", "tok2"]
    assert server.sent("subscribe")[0]["params"]["snap_trades"] is True


def test_refused_key_stops_only_that_connection() -> None:
    async def body() -> tuple[Recorder, Connection]:
        rec = Recorder()
        sub = Subscription("balances", (), (("snapshot", True),), private=True)
        async with FakeKraken() as server, aiohttp.ClientSession() as session:
            conn, _stop, task = await _connection(
                server, (sub,), rec, session, private=True, credentials=Credentials("bad-key", SECRET)
            )
            await task  # returns by itself: a refused key is not retried
            return rec, conn

    rec, conn = run(body())
    assert rec.kinds() == ["auth_failed"]
    assert conn.stopped_reason is not None and "Invalid key" in conn.stopped_reason
    assert SECRET not in conn.stopped_reason


def test_connection_refused_is_retried_with_backoff() -> None:
    async def body() -> Connection:
        rec = Recorder()
        async with aiohttp.ClientSession() as session:
            spec = ConnectionSpec("nowhere", "ws://127.0.0.1:9/v2", (BOOK,))
            limiter = ConnectLimiter(100, 60)
            conn = Connection(spec, rec, session, limiter=limiter, options=_options())
            stop = asyncio.Event()
            task = asyncio.create_task(conn.run(stop))
            while len(limiter._times) < 3:
                await asyncio.sleep(0.01)
            stop.set()
            await task
            return conn

    conn = run(body())
    assert conn.connects == 0


def test_connect_limiter_caps_attempts_in_the_window() -> None:
    async def body() -> list[float]:
        limiter = ConnectLimiter(max_attempts=3, window=0.3)
        loop = asyncio.get_running_loop()
        start = loop.time()
        times = []
        for _ in range(5):
            await limiter.acquire()
            times.append(loop.time() - start)
        return times

    times = run(body())
    assert times[2] < 0.2 and times[3] >= 0.29  # the 4th attempt waited for the window to slide


def test_backoff_is_capped_jittered_and_respects_maintenance() -> None:
    backoff = Backoff(base=0.5, cap=60.0)
    rng = random.Random(3)
    assert backoff.delay(0) == 0.0
    delays = [backoff.delay(n, rng=rng) for n in range(1, 12)]
    assert 0.25 <= delays[0] <= 0.5 and 0.5 <= delays[1] <= 1.0
    assert all(30.0 <= d <= 60.0 for d in delays[-3:])
    assert backoff.delay(1, maintenance=True, rng=rng) >= 5.0
    assert len({backoff.delay(4, rng=rng) for _ in range(20)}) > 1  # jitter


def test_plan_spreads_symbols_and_separates_what_must_be_separate() -> None:
    symbols = [f"S{i}/USD" for i in range(120)]
    specs = plan_connections(
        symbols=symbols,
        channels=["ticker", "book", "trade", "ohlc", "instrument", "executions", "balances", "level3"],
        ws_url="ws://p/v2",
        ws_auth_url="ws://a/v2",
        ws_l3_url="ws://l/v2",
        book_depth=25,
        level3_depth=100,
        ohlc_intervals=[1, 5],
        event_triggers=["trades", "bbo"],
        symbols_per_connection=50,
    )
    names = [s.name for s in specs]
    assert names == [
        "public-ref",
        "public-1",
        "public-1-bbo",
        "public-2",
        "public-2-bbo",
        "public-3",
        "public-3-bbo",
        "auth",
        "level3-1",
        "level3-2",
        "level3-3",
    ]
    by = {s.name: s for s in specs}
    assert by["public-ref"].channels == ("instrument",) and by["public-ref"].role == "reference"
    assert by["public-1"].channels == ("ticker", "book", "trade", "ohlc")
    assert [s.interval for s in by["public-1"].subscriptions if s.channel == "ohlc"] == [1, 5]
    assert len(by["public-3"].symbols) == 20
    assert by["public-1"].event_trigger == "trades" and by["public-1-bbo"].event_trigger == "bbo"
    assert dict(by["public-1"].subscriptions[1].params)["depth"] == 25
    assert (
        by["auth"].private
        and by["auth"].url == "ws://a/v2"
        and by["auth"].channels == ("executions", "balances")
    )
    assert all(s.private and s.url == "ws://l/v2" for s in specs if s.name.startswith("level3"))
    l3 = by["level3-1"].subscriptions[0]
    assert l3.request("subscribe", ["S1/USD"], "tok") == {
        "channel": "level3",
        "symbol": ["S1/USD"],
        "depth": 100,
        "snapshot": True,
        "token": "tok",
    }
    assert l3.request("unsubscribe", ["S1/USD"], "tok") == {
        "channel": "level3",
        "symbol": ["S1/USD"],
        "depth": 100,
        "token": "tok",
    }


@pytest.mark.parametrize("per_connection", [1, 200, 500])
def test_level3_connections_hold_at_most_200_symbols(per_connection: int) -> None:
    specs = plan_connections(
        symbols=[f"S{i}/USD" for i in range(450)],
        channels=["level3"],
        ws_url="ws://p",
        ws_auth_url="ws://a",
        ws_l3_url="ws://l",
        symbols_per_connection=per_connection,
        reference=False,
    )
    assert all(len(s.symbols) <= 200 for s in specs)
    assert sum(len(s.symbols) for s in specs) == 450
