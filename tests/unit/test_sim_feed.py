"""Synthetic market data over the wire: checksums recomputed from the JSON text, consistency of
trades, ohlc and ticker with each other and with the book, private channels, several connections."""

from __future__ import annotations

import json
import zlib
from datetime import UTC
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest

from connector.kraken.sim import SimConfig, Simulator
from connector.kraken.sim.testing import SimClient, fetch_token, is_channel, run

T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z


def cfg(**kw: Any) -> SimConfig:
    base: dict[str, Any] = {"symbols": ("BTC/USD", "ETH/USD"), "rate": 200.0, "heartbeat_interval": 0.5}
    base.update(kw)
    return SimConfig(**base)


def tokens(text: str) -> Any:
    """Decode keeping every number's original token text (independent of the simulator's code)."""
    return json.loads(text, parse_float=str, parse_int=str)


def digits(token: str) -> str:
    """Kraken's checksum rule on an already precision-formatted token: drop '.', drop leading zeros."""
    return token.replace(".", "").lstrip("0")


class TextBook:
    """An L2 book kept from the wire text only (reference §4, §5), with its own checksum."""

    def __init__(self, depth: int, pp: int, qp: int) -> None:
        self.depth, self.pp, self.qp = depth, pp, qp
        self.bids: dict[Decimal, str] = {}
        self.asks: dict[Decimal, str] = {}
        self.price_text: dict[Decimal, str] = {}

    def _check_token(self, token: str, precision: int) -> None:
        whole, _, frac = token.partition(".")
        assert len(frac) == precision and whole.isdigit(), token

    def apply(self, msg: dict) -> bool:
        data = msg["data"][0]
        if msg["type"] == "snapshot":
            self.bids.clear()
            self.asks.clear()
        for side, levels, desc in ((self.bids, data["bids"], True), (self.asks, data["asks"], False)):
            for lv in levels:
                self._check_token(lv["price"], self.pp)
                self._check_token(lv["qty"], self.qp)
                price = Decimal(lv["price"])
                self.price_text[price] = lv["price"]
                if Decimal(lv["qty"]) == 0:
                    side.pop(price, None)
                else:
                    side[price] = lv["qty"]
            for p in sorted(side, reverse=desc)[self.depth :]:
                del side[p]
        text = "".join(digits(self.price_text[p]) + digits(self.asks[p]) for p in sorted(self.asks)[:10])
        text += "".join(
            digits(self.price_text[p]) + digits(self.bids[p]) for p in sorted(self.bids, reverse=True)[:10]
        )
        return (zlib.crc32(text.encode()) & 0xFFFFFFFF) == int(data["checksum"])


async def precisions(c: SimClient) -> dict[str, tuple[int, int]]:
    await c.subscribe({"channel": "instrument"})
    msg = await c.until(is_channel("instrument", "snapshot"))
    return {p["symbol"]: (int(p["price_precision"]), int(p["qty_precision"])) for p in msg["data"]["pairs"]}


@pytest.mark.parametrize("depth", [10, 100])
def test_book_snapshot_and_updates_verify_from_the_text(depth: int) -> None:
    async def scenario() -> None:
        async with Simulator(cfg()) as sim, SimClient(sim.ws_url) as c:
            prec = await precisions(c)
            assert prec["BTC/USD"] == (1, 8) and prec["ETH/USD"] == (2, 8)  # the real pairs' metadata
            await c.subscribe({"channel": "book", "symbol": ["BTC/USD", "ETH/USD"], "depth": depth}, acks=2)
            books = {s: TextBook(depth, *prec[s]) for s in ("BTC/USD", "ETH/USD")}
            n = 0
            while n < 300:
                text = await c.recv_text()
                msg = tokens(text)
                if msg.get("channel") != "book":
                    continue
                sym = msg["data"][0]["symbol"]
                if msg["type"] == "snapshot":
                    assert len(msg["data"][0]["bids"]) == depth and len(msg["data"][0]["asks"]) == depth
                assert books[sym].apply(msg), f"checksum mismatch on frame {n}: {text[:200]}"
                n += 1
            for book in books.values():
                assert len(book.bids) == depth and len(book.asks) == depth
                assert max(book.bids) < min(book.asks)

    run(scenario())


def test_trade_ids_sequential_and_equal_to_the_market_tape() -> None:
    async def scenario() -> None:
        async with Simulator(cfg(rate=500.0)) as sim, SimClient(sim.ws_url) as c:
            await c.subscribe({"channel": "trade", "symbol": ["BTC/USD"], "snapshot": True})
            snap = await c.until(is_channel("trade", "snapshot"))
            updates = await c.collect(is_channel("trade", "update"), 200)
            ids = [int(t["trade_id"]) for m in [snap, *updates] for t in m["data"]]
            assert ids == list(range(ids[0], ids[0] + len(ids)))  # no gap, no duplicate
            tape = {t.trade_id: t for t in sim.trade_history("BTC/USD")}
            for m in updates:
                (t,) = m["data"]
                ref = tape[int(t["trade_id"])]
                assert (Decimal(t["price"]) * 10, Decimal(t["qty"]) * 10**8) == (ref.price, ref.qty)
                assert t["side"] == ref.side and t["ord_type"] in ("limit", "market")
            assert sim.trades_sent("BTC/USD")[-len(ids) :] == ids

    run(scenario())


def test_trades_are_at_the_best_price_of_the_book_just_before() -> None:
    async def scenario() -> None:
        async with Simulator(cfg()) as sim, SimClient(sim.ws_url) as c:
            await c.subscribe({"channel": "book", "symbol": ["ETH/USD"]})
            await c.subscribe({"channel": "trade", "symbol": ["ETH/USD"]})
            book = TextBook(10, 2, 8)
            before: tuple[Decimal, Decimal] | None = None
            checked = 0
            while checked < 100:
                msg = tokens(await c.recv_text())
                if msg.get("channel") == "book":
                    if book.bids:
                        before = (max(book.bids), min(book.asks))
                    assert book.apply(msg)
                elif msg.get("channel") == "trade" and before is not None:
                    # One market event = one book frame then one trade frame: the taker hit the best
                    # level as it was before that book frame (reference §2.4: price of the trade).
                    (t,) = msg["data"]
                    assert Decimal(t["price"]) == (before[1] if t["side"] == "buy" else before[0])
                    checked += 1

    run(scenario())


def test_ohlc_candles_equal_an_aggregation_of_the_trades() -> None:
    async def scenario() -> None:
        # Virtual clock: 1.5 s of market time per event, so 1-minute candles close every 40 events.
        config = cfg(rate=1000.0, start_time_ns=T0, time_step_ns=1_500_000_000, symbols=("BTC/USD",))
        async with Simulator(config) as sim, SimClient(sim.ws_url) as c:
            await c.subscribe({"channel": "trade", "symbol": ["BTC/USD"]})
            await c.subscribe({"channel": "ohlc", "symbol": ["BTC/USD"], "interval": 1})
            await c.subscribe({"channel": "ohlc", "symbol": ["BTC/USD"], "interval": 5})
            updates: list[tuple[int, dict]] = []  # (id of the trade that triggered it, candle)
            last_trade_id = None
            while len(updates) < 600:
                msg = tokens(await c.recv_text())
                if msg.get("channel") == "trade":
                    last_trade_id = int(msg["data"][-1]["trade_id"])
                elif msg.get("channel") == "ohlc" and msg["type"] == "update" and last_trade_id is not None:
                    updates.extend((last_trade_id, candle) for candle in msg["data"])
            tape = sim.trade_history("BTC/USD")
            begins = set()
            for trade_id, candle in updates:
                interval = int(candle["interval"])
                span = interval * 60_000_000_000
                begin = _ns(candle["interval_begin"])
                assert begin % span == 0 and candle["interval_begin"].endswith(":00.000000000Z")
                assert _ns(candle["timestamp"].replace("Z", "000Z")) == begin + span  # deprecated: the end
                # Kraken semantics: every trade of the interval so far (the tape is the market's truth).
                ts = [t for t in tape if begin <= t.ts_ns < begin + span and t.trade_id <= trade_id]
                assert ts and ts[-1].trade_id == trade_id
                price = [Decimal(t.price) / 10 for t in ts]
                qty = [Decimal(t.qty) / 10**8 for t in ts]
                assert Decimal(candle["open"]) == price[0] and Decimal(candle["close"]) == price[-1]
                assert Decimal(candle["high"]) == max(price) and Decimal(candle["low"]) == min(price)
                assert Decimal(candle["volume"]) == sum(qty) and int(candle["trades"]) == len(ts)
                vwap = (sum(p * q for p, q in zip(price, qty, strict=True)) / sum(qty)).quantize(
                    Decimal("0.1"), rounding=ROUND_HALF_UP
                )
                assert Decimal(candle["vwap"]) == vwap
                begins.add((interval, begin))
            assert len({b for i, b in begins if i == 1}) >= 5  # several 1-minute candles went by
            assert {i for i, _ in begins} == {1, 5}

    run(scenario())


def _ns(text: str) -> int:
    from datetime import datetime

    head, frac = text.rstrip("Z").split(".")
    dt = datetime.strptime(head, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    return int(dt.timestamp()) * 1_000_000_000 + int(frac.ljust(9, "0"))


def test_ticker_matches_book_and_last_trade() -> None:
    async def scenario() -> None:
        async with Simulator(cfg()) as sim, SimClient(sim.ws_url) as c:
            await c.subscribe({"channel": "book", "symbol": ["BTC/USD"]})
            await c.subscribe({"channel": "trade", "symbol": ["BTC/USD"]})
            await c.subscribe({"channel": "ticker", "symbol": ["BTC/USD"]})
            (bbo_ack,) = await c.subscribe(
                {"channel": "ticker", "symbol": ["ETH/USD"], "event_trigger": "bbo"}
            )
            assert bbo_ack["result"]["event_trigger"] == "bbo"
            book = TextBook(10, 1, 8)
            last_trade: dict | None = None
            checked = 0
            while checked < 60:
                msg = tokens(await c.recv_text())
                ch = msg.get("channel")
                if ch == "book":
                    assert book.apply(msg)
                elif ch == "trade":
                    last_trade = msg["data"][-1]
                elif ch == "ticker" and msg["data"][0]["symbol"] == "BTC/USD" and msg["type"] == "update":
                    tk = msg["data"][0]
                    assert last_trade is not None and tk["last"] == last_trade["price"]
                    best_bid, best_ask = max(book.bids), min(book.asks)
                    assert Decimal(tk["bid"]) == best_bid and tk["bid_qty"] == book.bids[best_bid]
                    assert Decimal(tk["ask"]) == best_ask and tk["ask_qty"] == book.asks[best_ask]
                    assert Decimal(tk["low"]) <= Decimal(tk["vwap"]) <= Decimal(tk["high"])
                    assert Decimal(tk["low"]) <= Decimal(tk["last"]) <= Decimal(tk["high"])
                    checked += 1
            assert sim.stats.by_channel["ticker"] >= 60

    run(scenario())


def test_two_connections_see_one_market() -> None:
    async def scenario() -> None:
        async with Simulator(cfg()) as sim, SimClient(sim.ws_url) as a, SimClient(sim.ws_url) as b:
            await a.subscribe({"channel": "trade", "symbol": ["ETH/USD"]})
            first_a = await a.until(is_channel("trade", "update"))
            await b.subscribe({"channel": "trade", "symbol": ["ETH/USD"]})
            await b.subscribe({"channel": "book", "symbol": ["ETH/USD"], "depth": 25})
            first_b = await b.until(is_channel("trade", "update"))
            more_a = await a.collect(is_channel("trade", "update"), 60)
            ids_a = {int(t["trade_id"]) for m in [first_a, *more_a] for t in m["data"]}
            assert int(first_b["data"][0]["trade_id"]) in ids_a  # same tape
            assert sim.stats.connections_open == 2

    run(scenario())


def test_private_channels_need_a_token_from_the_rest_endpoint() -> None:
    async def scenario() -> None:
        async with Simulator(cfg(account_trade_every=2)) as sim, SimClient(sim.auth_ws_url) as c:
            (no_token,) = await c.subscribe({"channel": "executions"})
            assert no_token["success"] is False and "token" in no_token["error"]
            (bad_token,) = await c.subscribe({"channel": "balances", "token": "forged"})
            assert bad_token["success"] is False and bad_token["error"] == "ESession:Invalid session"
            reply = await fetch_token(sim.rest_url)
            assert reply["error"] == [] and reply["result"]["expires"] == 900
            token = reply["result"]["token"]
            (ex,) = await c.subscribe({"channel": "executions", "token": token, "snap_trades": True})
            assert (
                ex["success"] and ex["result"]["snap_orders"] is True and ex["result"]["snap_trades"] is True
            )
            snap = await c.until(is_channel("executions", "snapshot"))
            assert snap["sequence"] == 1 and {o["order_status"] for o in snap["data"]} == {"new"}
            (bal,) = await c.subscribe({"channel": "balances", "token": token})
            assert bal["success"]
            bsnap = await c.until(is_channel("balances", "snapshot"))
            balances = {b["asset"]: Decimal(b["balance"]) for b in bsnap["data"]}
            assert set(balances) == {"BTC", "ETH", "USD"}
            # Account fills: pending_new -> new -> trade -> filled per order, sequence +1 per message.
            execs = await c.collect(is_channel("executions", "update"), 12)
            assert [e["sequence"] for e in execs] == list(range(2, 14))
            kinds = [e["data"][0]["exec_type"] for e in execs]
            start = kinds.index("pending_new")
            assert kinds[start : start + 4] == ["pending_new", "new", "trade", "filled"]
            fills = {
                e["data"][0]["exec_id"]: e["data"][0] for e in execs if e["data"][0]["exec_type"] == "trade"
            }
            ledgers = [m["data"][0] for m in await c.collect(is_channel("balances", "update"), 8)]
            # Balances move by amount - fee (reference §3.4), starting from the snapshot.
            running = dict(balances)
            for entry in ledgers:
                running[entry["asset"]] += Decimal(entry["amount"]) - Decimal(entry["fee"])
                assert Decimal(entry["balance"]) == running[entry["asset"]]
            # Each fill's two legs share its exec_id as ref_id (base ± qty, quote ∓ cost with the fee).
            matched = 0
            for ref in {e["ref_id"] for e in ledgers} & set(fills):
                fill = fills[ref]
                legs = {e["asset"]: e for e in ledgers if e["ref_id"] == ref}
                base, quote = fill["symbol"].split("/")
                sign = 1 if fill["side"] == "buy" else -1
                assert Decimal(legs[base]["amount"]) == sign * Decimal(fill["last_qty"])
                assert Decimal(legs[quote]["amount"]) == -sign * Decimal(fill["cost"])
                assert Decimal(legs[quote]["fee"]) == Decimal(fill["fees"][0]["qty"])
                matched += 1
            assert matched >= 1

    run(scenario())


def test_level3_needs_token_and_checksums_verify() -> None:
    async def scenario() -> None:
        async with Simulator(cfg(symbols=("BTC/USD",), rate=1000.0)) as sim, SimClient(sim.l3_ws_url) as c:
            (refused,) = await c.subscribe({"channel": "level3", "symbol": ["BTC/USD"]})
            assert refused["success"] is False
            token = (await fetch_token(sim.rest_url))["result"]["token"]
            (ack,) = await c.subscribe({"channel": "level3", "symbol": ["BTC/USD"], "token": token})
            assert ack["success"] and ack["result"]["depth"] == 10
            bids: dict[Decimal, list[tuple[str, str, str]]] = {}
            asks: dict[Decimal, list[tuple[str, str, str]]] = {}
            for _ in range(200):
                msg = tokens(await c.recv_text())
                if msg.get("channel") != "level3":
                    continue
                data = msg["data"][0]
                if msg["type"] == "snapshot":
                    for side, orders in ((bids, data["bids"]), (asks, data["asks"])):
                        for o in orders:
                            side.setdefault(Decimal(o["limit_price"]), []).append(
                                (o["order_id"], o["limit_price"], o["order_qty"])
                            )
                else:
                    for side, events, desc in ((bids, data["bids"], True), (asks, data["asks"], False)):
                        for e in events:
                            price = Decimal(e["limit_price"])
                            level = side.setdefault(price, [])
                            ids = [x[0] for x in level]
                            entry = (e["order_id"], e["limit_price"], e["order_qty"])
                            if e["event"] == "add":
                                level.append(entry)
                            elif e["event"] == "modify":
                                level[ids.index(e["order_id"])] = entry
                            else:
                                del level[ids.index(e["order_id"])]
                            if not level:
                                del side[price]
                        for p in sorted(side, reverse=desc)[10:]:
                            del side[p]
                text = "".join(
                    digits(p) + digits(q) for price in sorted(asks)[:10] for _, p, q in asks[price]
                ) + "".join(
                    digits(p) + digits(q)
                    for price in sorted(bids, reverse=True)[:10]
                    for _, p, q in bids[price]
                )
                assert zlib.crc32(text.encode()) & 0xFFFFFFFF == int(data["checksum"])
            assert len(bids) == len(asks) == 10

    run(scenario())


def test_max_rate_mode_streams_fast_and_in_order() -> None:
    async def scenario() -> None:
        async with Simulator(cfg(rate=None, symbols=("BTC/USD",))) as sim, SimClient(sim.ws_url) as c:
            await c.subscribe({"channel": "trade", "symbol": ["BTC/USD"]})
            msgs = await c.collect(is_channel("trade", "update"), 3000, timeout=15)
            ids = [int(t["trade_id"]) for m in msgs for t in m["data"]]
            assert ids == list(range(ids[0], ids[0] + len(ids)))

    run(scenario())
