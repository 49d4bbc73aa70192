"""The simulator's Kraken v2 request/response protocol over a real WebSocket (127.0.0.1, port 0)."""

from __future__ import annotations

import asyncio
import json
import re

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from connector.kraken.sim import FaultConfig, SimConfig, Simulator
from connector.kraken.sim.testing import SimClient, is_channel, run

RFC3339_US = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def cfg(**kw: object) -> SimConfig:
    base = {"symbols": ("BTC/USD", "ETH/USD"), "rate": 50.0, "heartbeat_interval": 0.05}
    base.update(kw)
    return SimConfig(**base)  # type: ignore[arg-type]


def test_status_first_then_ack_with_req_id_and_echoed_params() -> None:
    async def scenario() -> None:
        async with Simulator(cfg()) as sim, SimClient(sim.ws_url) as c:
            status_text = await c.recv_text()
            status = json.loads(status_text)
            assert status["channel"] == "status" and status["type"] == "update"
            row = status["data"][0]
            assert row["system"] == "online" and row["api_version"] == "v2"
            assert isinstance(row["connection_id"], int) and 0 <= row["connection_id"] < 2**64
            await c.send(
                {"method": "subscribe", "params": {"channel": "book", "symbol": ["BTC/USD"]}, "req_id": 42}
            )
            ack = await c.until(lambda m: "method" in m)
            assert ack["method"] == "subscribe" and ack["req_id"] == 42 and ack["success"] is True
            assert ack["result"] == {"channel": "book", "depth": 10, "snapshot": True, "symbol": "BTC/USD"}
            assert RFC3339_US.match(ack["time_in"]) and RFC3339_US.match(ack["time_out"])
            assert ack["time_in"] <= ack["time_out"]
            # Defaults are echoed per channel (reference §1.4, §2).
            (t,) = await c.subscribe({"channel": "ticker", "symbol": ["ETH/USD"]})
            assert t["result"] == {
                "channel": "ticker",
                "event_trigger": "trades",
                "snapshot": True,
                "symbol": "ETH/USD",
            }
            (tr,) = await c.subscribe({"channel": "trade", "symbol": ["ETH/USD"]})
            assert tr["result"] == {"channel": "trade", "snapshot": False, "symbol": "ETH/USD"}
            (o,) = await c.subscribe({"channel": "ohlc", "symbol": ["ETH/USD"], "interval": 5})
            assert o["result"]["interval"] == 5 and o["result"]["warnings"]
            (i,) = await c.subscribe({"channel": "instrument"})
            assert i["result"]["channel"] == "instrument" and i["success"]

    run(scenario())


def test_one_ack_per_symbol_and_a_bad_symbol_fails_alone() -> None:
    async def scenario() -> None:
        async with Simulator(cfg()) as sim, SimClient(sim.ws_url) as c:
            replies = await c.subscribe(
                {"channel": "trade", "symbol": ["BTC/USD", "XBT/USD", "ETH/USD"]}, acks=3
            )
            by_symbol = {r.get("symbol") or r["result"]["symbol"]: r for r in replies}
            assert by_symbol["BTC/USD"]["success"] and by_symbol["ETH/USD"]["success"]
            bad = by_symbol["XBT/USD"]
            assert bad["success"] is False and bad["error"] == "Currency pair not supported XBT/USD"
            assert bad["method"] == "subscribe" and bad["req_id"] == replies[0]["req_id"]
            # The good symbols stream.
            got = await c.collect(is_channel("trade", "update"), 4)
            assert {m["data"][0]["symbol"] for m in got} == {"BTC/USD", "ETH/USD"}

    run(scenario())


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"channel": "book", "symbol": ["BTC/USD"], "depth": 20}, "Subscription depth not supported"),
        (
            {"channel": "ohlc", "symbol": ["BTC/USD"], "interval": 2},
            "Subscription ohlc interval not supported",
        ),
        ({"channel": "ohlc", "symbol": ["BTC/USD"]}, "Subscription ohlc interval not supported"),
        ({"channel": "ticker", "symbol": ["BTC/USD"], "event_trigger": "x"}, "EGeneral:Invalid arguments"),
        ({"channel": "book", "symbol": "BTC/USD"}, "EGeneral:Invalid arguments"),
        ({"channel": "nope", "symbol": ["BTC/USD"]}, "Channel nope not found"),
        ({"channel": "executions"}, "requires the authenticated endpoint"),
        ({"channel": "level3", "symbol": ["BTC/USD"]}, "requires the level3 endpoint"),
    ],
)
def test_bad_params_get_an_error_reply(params: dict, error: str) -> None:
    async def scenario() -> None:
        async with Simulator(cfg()) as sim, SimClient(sim.ws_url) as c:
            (reply,) = await c.subscribe(params)
            assert reply["success"] is False and reply["method"] == "subscribe"
            assert error in reply["error"]
            assert "result" not in reply and "time_in" in reply and "time_out" in reply

    run(scenario())


def test_ping_pong_and_malformed_requests() -> None:
    async def scenario() -> None:
        async with Simulator(cfg()) as sim, SimClient(sim.ws_url) as c:
            await c.recv()  # status
            await c.send({"method": "ping", "req_id": 101})
            pong = await c.recv()
            assert (
                pong["method"] == "pong"
                and pong["req_id"] == 101
                and "time_in" in pong
                and "time_out" in pong
            )
            assert c.ws is not None
            await c.ws.send("{not json")
            bad = await c.recv()
            assert bad["success"] is False and bad["error"] == "Malformed request"
            await c.send({"method": "add_order", "params": {}, "req_id": 5})
            unknown = await c.recv()
            assert unknown["success"] is False and unknown["req_id"] == 5 and unknown["method"] == "add_order"

    run(scenario())


def test_heartbeat_only_once_subscribed() -> None:
    async def scenario() -> None:
        async with Simulator(cfg(rate=0.001)) as sim, SimClient(sim.ws_url) as c:
            await c.recv()  # status
            with pytest.raises(asyncio.TimeoutError):
                await c.recv(timeout=0.2)  # nothing subscribed: no heartbeat (reference §1.7)
            await c.subscribe({"channel": "instrument"})
            hb = await c.until(lambda m: m.get("channel") == "heartbeat", timeout=2)
            assert hb == {"channel": "heartbeat"}
            assert c.raw[-1] == '{"channel":"heartbeat"}'

    run(scenario())


def test_unsubscribe_acks_and_not_found_and_already_subscribed() -> None:
    async def scenario() -> None:
        async with Simulator(cfg()) as sim, SimClient(sim.ws_url) as c:
            await c.subscribe({"channel": "book", "symbol": ["BTC/USD"], "depth": 25})
            (again,) = await c.subscribe({"channel": "book", "symbol": ["BTC/USD"], "depth": 25})
            assert (
                again["success"] is False
                and again["error"] == "Already subscribed"
                and again["symbol"] == "BTC/USD"
            )
            req = await c.send(
                {"method": "unsubscribe", "params": {"channel": "book", "symbol": ["BTC/USD", "ETH/USD"]}}
            )
            replies = await c.collect(lambda m: m.get("req_id") == req, 2)
            ok = next(r for r in replies if r["success"])
            assert ok["method"] == "unsubscribe"
            assert ok["result"] == {"channel": "book", "depth": 25, "symbol": "BTC/USD"}
            nf = next(r for r in replies if not r["success"])
            assert nf["error"] == "Subscription Not Found" and nf["symbol"] == "ETH/USD"
            # After the ack nothing more for that book arrives (the queue is ordered).
            await c.send({"method": "ping", "req_id": 9})
            msgs = []
            while True:
                m = await c.recv()
                if m.get("method") == "pong":
                    break
                msgs.append(m)
            assert sim.stats.subscriptions == 1
            await asyncio.sleep(0.1)
            await c.send({"method": "ping", "req_id": 10})
            m = await c.until(lambda m: m.get("method") == "pong" or m.get("channel") == "book")
            assert m.get("method") == "pong"

    run(scenario())


def test_rejected_symbols_fail_while_others_succeed() -> None:
    async def scenario() -> None:
        faults = FaultConfig(reject_symbols=frozenset({"ETH/USD"}))
        async with Simulator(cfg(faults=faults)) as sim, SimClient(sim.ws_url) as c:
            replies = await c.subscribe({"channel": "ticker", "symbol": ["BTC/USD", "ETH/USD"]}, acks=2)
            ok = [r for r in replies if r["success"]]
            bad = [r for r in replies if not r["success"]]
            assert [r["result"]["symbol"] for r in ok] == ["BTC/USD"]
            assert [(r["symbol"], r["error"]) for r in bad] == [("ETH/USD", "EService:Unavailable")]
            # Tests can change the list at run time.
            sim.reject_symbols.discard("ETH/USD")
            (late,) = await c.subscribe({"channel": "ticker", "symbol": ["ETH/USD"]})
            assert late["success"] is True

    run(scenario())


def test_unknown_path_is_refused_and_endpoints_are_distinct() -> None:
    async def scenario() -> None:
        async with Simulator(cfg()) as sim:
            assert sim.ws_url.endswith("/v2") and sim.auth_ws_url.endswith("/auth/v2")
            assert sim.l3_ws_url.endswith("/l3/v2") and sim.rest_url.startswith("http://127.0.0.1:")
            with pytest.raises(InvalidStatus) as info:
                async with connect(sim.ws_url.replace("/v2", "/v3")):
                    pass
            assert info.value.response.status_code == 404

    run(scenario())


def test_system_status_change_is_pushed() -> None:
    async def scenario() -> None:
        async with Simulator(cfg()) as sim, SimClient(sim.ws_url) as c:
            await c.recv()
            sim.set_system_status("maintenance")
            msg = await c.until(is_channel("status"))
            assert msg["data"][0]["system"] == "maintenance"

    run(scenario())
