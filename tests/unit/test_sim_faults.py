"""Fault injection, each fault observed from the client side (and in the simulator's counters)."""

from __future__ import annotations

import asyncio
import itertools
import json
import zlib
from decimal import Decimal
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosedError

from connector.kraken.sim import FaultConfig, SimConfig, SimThread, Simulator
from connector.kraken.sim.testing import SimClient, is_channel, run


def cfg(**kw: Any) -> SimConfig:
    base: dict[str, Any] = {"symbols": ("BTC/USD",), "rate": 200.0, "heartbeat_interval": 0.05}
    base.update(kw)
    return SimConfig(**base)


def l2_ok(book: dict[str, dict[str, str]], msg: dict) -> bool:
    """Apply a book frame (decoded with parse_float=str) and verify its checksum from the text."""
    data = msg["data"][0]
    if msg["type"] == "snapshot":
        book["bids"], book["asks"] = {}, {}
    for side, desc in (("bids", True), ("asks", False)):
        for lv in data[side]:
            if Decimal(lv["qty"]) == 0:
                book[side].pop(lv["price"], None)
            else:
                book[side][lv["price"]] = lv["qty"]
        keep = sorted(book[side], key=Decimal, reverse=desc)[:10]
        book[side] = {p: book[side][p] for p in keep}

    def part(side: str, desc: bool) -> str:
        prices = sorted(book[side], key=Decimal, reverse=desc)[:10]
        return "".join(
            p.replace(".", "").lstrip("0") + book[side][p].replace(".", "").lstrip("0") for p in prices
        )

    return zlib.crc32((part("asks", False) + part("bids", True)).encode()) & 0xFFFFFFFF == data["checksum"]


def test_drop_after_n_frames_without_close_frame_and_the_market_keeps_running() -> None:
    async def scenario() -> None:
        async with Simulator(cfg(faults=FaultConfig(drop_every=7))) as sim:
            seen: list[int] = []
            for _ in range(2):
                async with SimClient(sim.ws_url) as c:
                    await c.subscribe({"channel": "trade", "symbol": ["BTC/USD"]})
                    frames = 0
                    with pytest.raises(ConnectionClosedError) as info:
                        while True:
                            msg = await c.recv()
                            if msg.get("channel") == "trade":
                                frames += 1
                                seen.extend(t["trade_id"] for t in msg["data"])
                    assert info.value.rcvd is None  # TCP closed, no close frame (a network drop)
                    assert frames == 7
            assert sim.stats.faults["drop"] == 2
            # Trade ids keep counting across reconnects; the missed ones are in the market's tape.
            tape = [t.trade_id for t in sim.trade_history("BTC/USD")]
            assert seen == sorted(set(seen)) and set(seen) <= set(tape)
            assert tape == list(range(tape[0], tape[0] + len(tape)))

    run(scenario())


def test_stall_silences_everything_then_resumes_without_loss() -> None:
    async def scenario() -> None:
        async with Simulator(cfg()) as sim, SimClient(sim.ws_url) as c:
            await c.subscribe({"channel": "trade", "symbol": ["BTC/USD"]})
            before = await c.collect(is_channel("trade"), 3)
            sim.stall(1.0)
            before += [m for m in await _until_silent(c) if m.get("channel") == "trade"]
            after = await c.collect(is_channel("trade"), 10, timeout=5)
            ids = [t["trade_id"] for m in [*before, *after] for t in m["data"]]
            assert ids == list(range(ids[0], ids[0] + len(ids)))  # delayed, not lost
            assert sim.stats.faults["stall"] == 1

    run(scenario())


def test_stall_every_n_frames_from_config() -> None:
    async def scenario() -> None:
        faults = FaultConfig(stall_every=5, stall_seconds=0.5)
        async with Simulator(cfg(faults=faults)) as sim, SimClient(sim.ws_url) as c:
            await c.subscribe({"channel": "trade", "symbol": ["BTC/USD"]})
            await c.collect(is_channel("trade"), 5)
            await _until_silent(c)
            assert sim.stats.faults["stall"] == 1

    run(scenario())


def test_malformed_frames_invalid_json_and_unknown_shape() -> None:
    async def scenario() -> None:
        async with Simulator(cfg()) as sim, SimClient(sim.ws_url) as c:
            await c.recv()  # status
            sim.inject_malformed("invalid_json")
            text = await c.recv_text()
            with pytest.raises(json.JSONDecodeError):
                json.loads(text)
            sim.inject_malformed("unknown_shape")
            msg = json.loads(await c.recv_text())
            assert msg["channel"] not in ("book", "trade", "ticker", "ohlc", "status", "heartbeat")
            assert sim.stats.faults["malformed_invalid_json"] == 1
            assert sim.stats.faults["malformed_unknown_shape"] == 1

    run(scenario())


def test_malformed_every_n_frames_are_extra_frames() -> None:
    async def scenario() -> None:
        async with Simulator(cfg(faults=FaultConfig(malformed_every=4))) as sim, SimClient(sim.ws_url) as c:
            await c.subscribe({"channel": "trade", "symbol": ["BTC/USD"]})
            texts = []
            while len(texts) < 12:
                text = await c.recv_text()
                if '"heartbeat"' not in text and '"method"' not in text and '"status"' not in text:
                    texts.append(text)
            bad = [t for t in texts if not t.startswith('{"channel":"trade"')]
            assert len(bad) == 2 and texts[4] == bad[0] and texts[9] == bad[1]  # after frames 4 and 8
            good = [json.loads(t)["data"][0]["trade_id"] for t in texts if t not in bad]
            assert good == list(range(good[0], good[0] + len(good)))  # inserted, nothing replaced

    run(scenario())


def test_wrong_checksum_then_resubscribe_recovers() -> None:
    async def scenario() -> None:
        async with Simulator(cfg()) as sim, SimClient(sim.ws_url) as c:
            await c.subscribe({"channel": "book", "symbol": ["BTC/USD"]})
            book: dict[str, dict[str, str]] = {}
            for _ in range(5):
                assert l2_ok(book, json.loads(await _book_text(c), parse_float=str))
            sim.corrupt_next_checksum("BTC/USD")
            assert not l2_ok(book, json.loads(await _book_text(c), parse_float=str))
            assert sim.stats.faults["bad_checksum"] == 1
            # Kraken's only recovery (reference §4.7): resubscribe; the simulator kept its true book.
            req = await c.send(
                {"method": "unsubscribe", "params": {"channel": "book", "symbol": ["BTC/USD"]}}
            )
            await c.until(lambda m: m.get("req_id") == req)
            await c.drain_pending()
            await c.subscribe({"channel": "book", "symbol": ["BTC/USD"]})
            snap = json.loads(await _book_text(c), parse_float=str)
            assert snap["type"] == "snapshot" and l2_ok(book, snap)
            for _ in range(5):
                assert l2_ok(book, json.loads(await _book_text(c), parse_float=str))

    run(scenario())


async def _until_silent(c: SimClient, quiet: float = 0.3) -> list[Any]:
    """Read what was already on its way until the line goes quiet (heartbeats every 50 ms and 200
    events/s would never leave a 300 ms silence unless the simulator stalls)."""
    got = await c.drain_pending()
    for _ in range(1000):
        try:
            got.append(await c.recv(timeout=quiet))
        except TimeoutError:
            return got
    raise AssertionError("never went quiet")


async def _book_text(c: SimClient) -> str:
    while True:
        text = await c.recv_text()
        if text.startswith('{"channel":"book"'):
            return text


def test_bad_checksum_rate_is_seeded_and_counted() -> None:
    async def scenario() -> None:
        faults = FaultConfig(bad_checksum_rate=0.2)
        async with Simulator(cfg(faults=faults, rate=500.0)) as sim, SimClient(sim.ws_url) as c:
            await c.subscribe({"channel": "book", "symbol": ["BTC/USD"]})
            book: dict[str, dict[str, str]] = {}
            failures = sum(
                [not l2_ok(book, json.loads(await _book_text(c), parse_float=str)) for _ in range(150)]
            )
            assert 5 < failures < 75 and failures == sim.stats.faults["bad_checksum"]

    run(scenario())


def test_trade_gap_skips_an_id_the_market_still_has() -> None:
    async def scenario() -> None:
        async with Simulator(cfg()) as sim, SimClient(sim.ws_url) as c:
            await c.subscribe({"channel": "trade", "symbol": ["BTC/USD"]})
            first = await c.collect(is_channel("trade"), 3)
            sim.skip_next_trade("BTC/USD")
            rest = await c.collect(is_channel("trade"), 3)
            ids = [t["trade_id"] for m in [*first, *rest] for t in m["data"]]
            gaps = [b - a for a, b in itertools.pairwise(ids)]
            assert sorted(gaps) == [1, 1, 1, 1, 2]
            (missing,) = sim.stats.trade_ids_withheld["BTC/USD"]
            assert missing not in ids and missing in {t.trade_id for t in sim.trade_history("BTC/USD")}
            assert missing not in sim.trades_sent("BTC/USD")

    run(scenario())


def test_trade_gap_every_n_from_config() -> None:
    async def scenario() -> None:
        async with Simulator(cfg(faults=FaultConfig(trade_gap_every=3))) as sim, SimClient(sim.ws_url) as c:
            await c.subscribe({"channel": "trade", "symbol": ["BTC/USD"]})
            msgs = await c.collect(is_channel("trade"), 6)
            ids = [t["trade_id"] for m in msgs for t in m["data"]]
            assert [b - a for a, b in itertools.pairwise(ids)] == [1, 2, 1, 2, 1]
            assert len(sim.stats.trade_ids_withheld["BTC/USD"]) >= 2

    run(scenario())


def test_sim_thread_for_synchronous_code() -> None:
    from websockets.sync.client import connect

    runner = SimThread(cfg())
    sim = runner.start()
    try:
        with connect(runner.ws_url) as ws:
            assert json.loads(ws.recv(timeout=5))["channel"] == "status"
            ws.send(json.dumps({"method": "ping", "req_id": 3}))
            assert json.loads(ws.recv(timeout=5))["req_id"] == 3
            assert runner.call(sim.drop_connections) == 1
            with pytest.raises(ConnectionClosedError):
                ws.recv(timeout=5)
    finally:
        runner.stop()
    assert sim.stats.connections_open == 0


def test_connection_drop_trigger_and_endpoint_filter() -> None:
    async def scenario() -> None:
        async with Simulator(cfg()) as sim, SimClient(sim.ws_url) as pub, SimClient(sim.auth_ws_url) as auth:
            await pub.recv()
            await auth.recv()
            assert sim.drop_connections("auth") == 1
            with pytest.raises(ConnectionClosedError):
                await auth.recv()
            await pub.send({"method": "ping", "req_id": 1})
            assert (await pub.until(lambda m: m.get("method") == "pong"))["req_id"] == 1
            await asyncio.sleep(0)

    run(scenario())
