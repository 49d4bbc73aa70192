"""Replay mode: captured frames go out with their original text, control lines are replaced."""

from __future__ import annotations

import json
from pathlib import Path

from connector.kraken.sim import SimConfig, Simulator
from connector.kraken.sim.replay import load_replay
from connector.kraken.sim.testing import SimClient, is_channel, run
from schemas.checksum import l2_checksum, l3_checksum, to_fixed
from tests.conftest import KRAKEN_CAPTURES

CRYPTO_TRACKER = KRAKEN_CAPTURES / "crypto-tracker_btc-eth_book-trade.jsonl"
TICKVAULT = KRAKEN_CAPTURES / "tickvault_btc_book.jsonl"
SDK = KRAKEN_CAPTURES / "python-kraken-sdk_orderbook-v2.json"
DOCS = KRAKEN_CAPTURES / "official_doc_examples.json"
CRYPTONORM = [KRAKEN_CAPTURES / f"cryptonorm_{n}.json" for n in ("book_snapshot", "book_update", "trade")]


def data_lines(path: Path) -> list[str]:
    out = []
    for line in path.read_text().splitlines():
        msg = json.loads(line)
        if "channel" in msg and msg["channel"] not in ("status", "heartbeat"):
            out.append(line)
    return out


def stream_of(text: str) -> tuple[str, str]:
    msg = json.loads(text)
    return msg["channel"], msg["data"][0]["symbol"]


def test_jsonl_frames_are_sent_byte_identical() -> None:
    async def scenario() -> None:
        expected = data_lines(CRYPTO_TRACKER)
        async with Simulator(SimConfig(replay=(CRYPTO_TRACKER,), rate=None, heartbeat_interval=0.5)) as sim:
            async with SimClient(sim.ws_url) as c:
                status = await c.recv()
                assert status["channel"] == "status"
                await c.subscribe({"channel": "book", "symbol": ["BTC/USD", "ETH/USD"]}, acks=2)
                await c.subscribe({"channel": "trade", "symbol": ["BTC/USD"]})
                got: list[str] = []
                while len(got) < len(expected):
                    text = await c.recv_text()
                    if '"method"' not in text and '"heartbeat"' not in text:
                        got.append(text)
            # Byte-identical, and in capture order within each stream.
            for stream in {stream_of(t) for t in expected}:
                assert [t for t in got if stream_of(t) == stream] == [
                    t for t in expected if stream_of(t) == stream
                ]
            # The capture's own status / acks / heartbeats were not replayed.
            assert sorted(got) == sorted(expected)
            assert sim.stats.trades_sent == 1

    run(scenario())


def test_each_subscription_replays_its_stream_from_the_start_and_others_get_nothing() -> None:
    async def scenario() -> None:
        expected = data_lines(TICKVAULT)
        config = SimConfig(replay=(TICKVAULT, CRYPTO_TRACKER), rate=None)
        async with Simulator(config) as sim, SimClient(sim.ws_url) as c:
            (no_data,) = await c.subscribe({"channel": "ticker", "symbol": ["ADA/USD"]})
            assert no_data["success"]  # a real pair without captured frames: ack, no data
            (unknown,) = await c.subscribe({"channel": "ticker", "symbol": ["FOO/BAR"]})
            assert unknown["success"] is False
            await c.subscribe({"channel": "book", "symbol": ["BTC/USD"]})
            tick_btc = [t for t in expected if stream_of(t) == ("book", "BTC/USD")]
            tracker_btc = [t for t in data_lines(CRYPTO_TRACKER) if stream_of(t) == ("book", "BTC/USD")]
            await c.collect(is_channel("book"), len(tick_btc) + len(tracker_btc))
            book_frames = [t for t in c.raw if t.startswith('{"channel":"book"')]
            assert book_frames == tick_btc + tracker_btc  # files in the order given, nothing else
            # Resubscribing starts the stream again (a new snapshot first).
            req = await c.send(
                {"method": "unsubscribe", "params": {"channel": "book", "symbol": ["BTC/USD"]}}
            )
            await c.until(lambda m: m.get("req_id") == req)
            await c.subscribe({"channel": "book", "symbol": ["BTC/USD"]})
            again = await c.until(is_channel("book"))
            assert again["type"] == "snapshot" and c.raw[-1] == tick_btc[0]

    run(scenario())


def test_init_updates_document_frames_keep_their_file_text() -> None:
    async def scenario() -> None:
        text = SDK.read_text()
        doc = json.loads(text)
        async with Simulator(SimConfig(replay=(SDK,), rate=None)) as sim, SimClient(sim.ws_url) as c:
            await c.subscribe({"channel": "book", "symbol": ["BTC/USD"]})
            frames = await c.collect(is_channel("book"), 1 + len(doc["updates"]))
            raw = c.raw[-len(frames) :]
            assert json.loads(raw[0]) == doc["init"] and all(
                r in text for r in raw
            )  # exact spans of the file
            assert [json.loads(r) for r in raw[1:]] == doc["updates"]
            # And they verify with Kraken's checksum at BTC/USD precision (1, 8), as published.
            book: dict[str, dict[int, int]] = {"bids": {}, "asks": {}}
            for r in raw:
                data = json.loads(r, parse_float=str)["data"][0]
                for side in ("bids", "asks"):
                    for lv in data[side]:
                        p, q = to_fixed(lv["price"], 1), to_fixed(lv["qty"], 8)
                        if q == 0:
                            book[side].pop(p, None)
                        else:
                            book[side][p] = q
                    keep = sorted(book[side], reverse=side == "bids")[:10]
                    book[side] = {p: book[side][p] for p in keep}
                asks = sorted(book["asks"].items())
                bids = sorted(book["bids"].items(), reverse=True)
                assert l2_checksum(asks, bids) == data["checksum"]

    run(scenario())


def test_single_message_files_and_doc_examples() -> None:
    async def scenario() -> None:
        async with (
            Simulator(SimConfig(replay=(*CRYPTONORM, DOCS), rate=None)) as sim,
            SimClient(sim.ws_url) as c,
        ):
            await c.subscribe({"channel": "trade", "symbol": ["BTC/USD"]})
            trade = await c.until(is_channel("trade"))
            assert c.raw[-1] == CRYPTONORM[2].read_text().strip()  # the whole file is the frame
            assert [t["trade_id"] for t in trade["data"]] == [102677144, 102677145]
            await c.subscribe({"channel": "book", "symbol": ["BTC/USD", "MATIC/USD"]}, acks=2)
            books = await c.collect(is_channel("book"), 5)
            btc = [m for m in (json.loads(t, parse_float=str) for t in c.raw) if m.get("channel") == "book"]
            assert json.loads(c.raw[c.raw.index(CRYPTONORM[0].read_text().strip())]) == json.loads(
                CRYPTONORM[0].read_text()
            )
            # Doc examples are built into frames whose checksum is the published one.
            doc = json.loads(DOCS.read_text())
            checks = {m["data"][0]["checksum"] for m in books}
            assert {2439117997, 2114181697, 3310070434} <= checks
            built = next(m for m in btc if m["data"][0]["checksum"] == 3310070434)["data"][0]
            asks = [(to_fixed(lv["price"], 1), to_fixed(lv["qty"], 8)) for lv in built["asks"]]
            bids = [(to_fixed(lv["price"], 1), to_fixed(lv["qty"], 8)) for lv in built["bids"]]
            assert l2_checksum(asks, bids) == doc["l2_btcusd_doc_example"]["checksum"]

    run(scenario())


def test_level3_doc_example_replays_on_the_l3_endpoint() -> None:
    async def scenario() -> None:
        from connector.kraken.sim.testing import fetch_token

        async with Simulator(SimConfig(replay=(DOCS,), rate=None)) as sim, SimClient(sim.l3_ws_url) as c:
            token = (await fetch_token(sim.rest_url))["result"]["token"]
            await c.subscribe({"channel": "level3", "symbol": ["BTC/USD"], "token": token})
            msg = json.loads((await c.until(is_channel("level3"))) and c.raw[-1], parse_float=str)
            data = msg["data"][0]
            levels: dict[str, dict[int, list[tuple[int, int]]]] = {"bids": {}, "asks": {}}
            for side in levels:
                for o in data[side]:
                    p = to_fixed(o["limit_price"], 1)
                    levels[side].setdefault(p, []).append((p, to_fixed(o["order_qty"], 8)))
            crc = l3_checksum(
                (levels["asks"][p] for p in sorted(levels["asks"])),
                (levels["bids"][p] for p in sorted(levels["bids"], reverse=True)),
            )
            assert crc == data["checksum"] == 1063832831

    run(scenario())


def test_replay_sends_the_real_instrument_snapshot() -> None:
    async def scenario() -> None:
        async with Simulator(SimConfig(replay=(TICKVAULT,), rate=None)) as sim, SimClient(sim.ws_url) as c:
            await c.subscribe({"channel": "instrument"})
            snap = await c.until(is_channel("instrument", "snapshot"))
            pairs = {p["symbol"]: p for p in snap["data"]["pairs"]}
            assert len(pairs) == 683 and len(snap["data"]["assets"]) == 296
            assert (pairs["BTC/USD"]["price_precision"], pairs["BTC/USD"]["qty_precision"]) == (1, 8)
            assert '"qty_increment":1E-8' in c.raw[-1]  # number tokens kept as published
            assert '"collateral_value":1.00,' in c.raw[-1]

    run(scenario())


def test_loader_skips_control_lines_and_counts_trades() -> None:
    data = load_replay([CRYPTO_TRACKER, TICKVAULT])
    assert data.skipped == 1 + 4 + 9 + 1 + 1 + sum(
        '"heartbeat"' in line for line in TICKVAULT.read_text().splitlines()
    )
    assert len(data.frames) == len(data_lines(CRYPTO_TRACKER)) + len(data_lines(TICKVAULT))
    trades = [f for f in data.frames if f.frame.trade_ids]
    assert len(trades) == 1 and trades[0].key == ("trade", "BTC/USD", None)
