"""`kracked dashboard` in headless Chromium with its topics filled by the real pipeline.

simulator → connector (book, trade, instrument) → Kafka → book / bars / spread / orders services, all
running while the page is open; the dashboard reads what they write. The test checks what a person
would see against what is in Kafka at that moment: the ladder equals the latest kracked.book.top of
each symbol (compared once the connector is stopped and the book service has committed everything, so
the book no longer moves), a bar produced while watching appears on the chart with its close, a
dry-run order from a signal appears as a marker and in the per-strategy table, and a trade-id gap
injected in the simulator appears in the health panel. The simulator runs a virtual market clock that
starts two hours ago and runs 60x faster than the wall clock, so one-minute bars close every second and
the orders' wall-clock times fall after the drawn bars. Saves artifacts/dashboard-pipeline.png.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from decimal import Decimal
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from connector.kraken.sim.config import SimConfig
from connector.kraken.sim.server import SimThread
from consumers.bars.service import BarsService
from consumers.book.service import BookService
from consumers.dashboard.settings import DashboardSettings
from consumers.dashboard.web import BackgroundDashboard
from consumers.orders.domain import Mode
from consumers.orders.service import OrdersService
from consumers.orders.settings import OrdersSettings
from consumers.spread.service import SpreadService
from kracked.kafka import consumer_config
from schemas.topics import Topic
from tests.integration.conftest import KafkaTest
from tests.integration.helpers import ServiceThread, end_offsets, produce, read_all
from tests.integration.test_connector_sim import running_connector
from tests.integration.test_dashboard import ARTIFACTS, browser, panel, text, wait_for

__all__ = ["browser"]  # the fixture, imported so that pytest finds it in this module

SYMBOLS = ("BTC/USD", "ETH/USD")
STRATEGY = "pipeline"
SIGNAL_ID = "pipe-1"
# 2 symbols x 40 events/s x 0.75 s of market time per event: 60 s of market time per second, from
# two hours ago, so a one-minute bar closes every second and every order (stamped with the wall clock)
# falls after the bars: its marker sits on the newest bar
RATE = 40.0
TIME_STEP_NS = 750_000_000
MARKET_LAG_NS = 2 * 3600 * 10**9
# bars and spread close windows by event time only (the wall-clock watermark of a caught-up service,
# hours ahead of this market, would close every window at once)
IDLE_DELAY_MS = 24 * 3600 * 1000

ROWS_JS = """
const r = document.querySelector(arguments[0]);
return r ? [...r.cells].map(c => c.textContent) : null;
"""


# ---- Kafka truth ----------------------------------------------------------------------------------
def committed(kafka: KafkaTest, group: str, topic: Topic) -> dict[int, int]:
    """Offsets a consumer group has committed on `topic` (without joining the group)."""
    name = kafka.topic(topic)
    consumer = Consumer(consumer_config(kafka.settings, group))
    try:
        tps = [TopicPartition(name, p) for p in end_offsets(kafka, topic)]
        return {tp.partition: tp.offset for tp in consumer.committed(tps, timeout=10)}
    finally:
        consumer.close()


def latest(records: list[dict[str, Any]], symbol: str, **match: Any) -> dict[str, Any] | None:
    """The last record of `symbol` (with the given field values) in topic order."""
    found = [r for r in records if r["symbol"] == symbol and all(r[k] == v for k, v in match.items())]
    return found[-1] if found else None


def ladder(top: dict[str, Any]) -> list[list[Any]]:
    """The rows the page must show for a book.top record: exact price/qty text, exact cumulative qty."""
    bids, asks = top["bids"], top["asks"]
    rows: list[list[Any]] = []
    bid_cum = ask_cum = Decimal(0)
    for i in range(max(len(bids), len(asks))):
        row: list[Any] = ["", "", "", "", "", ""]
        if i < len(bids):
            bid_cum += Decimal(bids[i]["qty"])
            row[0:3] = [bid_cum, bids[i]["qty"], bids[i]["price"]]
        if i < len(asks):
            ask_cum += Decimal(asks[i]["qty"])
            row[3:6] = [asks[i]["price"], asks[i]["qty"], ask_cum]
        rows.append(row)
    return rows


def shown_ladder(p: dict[str, Any]) -> list[list[Any]]:
    """The page's ladder with the cumulative columns as Decimal (the page prints them normalised)."""
    return [[Decimal(c) if j in (0, 5) and c else c for j, c in enumerate(row)] for row in p["rows"]]


# ---- running pieces -------------------------------------------------------------------------------
def services(kafka: KafkaTest) -> Iterator[tuple[str, ServiceThread]]:
    made = (
        ("book", BookService()),
        ("bars", BarsService((60,), grace_ms=0, idle_delay_ms=IDLE_DELAY_MS, settings=kafka.settings)),
        (
            "spread",
            SpreadService(
                "book.top", (60,), grace_ms=0, idle_delay_ms=IDLE_DELAY_MS, settings=kafka.settings
            ),
        ),
        ("orders", OrdersService(OrdersSettings(mode=Mode.DRY_RUN), kafka.settings)),
    )
    for name, service in made:
        yield name, ServiceThread(service, kafka, group=kafka.group(name))


def test_dashboard_shows_what_the_pipeline_writes(kafka: KafkaTest, browser: Any) -> None:
    kafka.create_topics()
    config = SimConfig(
        symbols=SYMBOLS,
        rate=RATE,
        seed=21,
        start_time_ns=time.time_ns() - MARKET_LAG_NS,
        time_step_ns=TIME_STEP_NS,
    )
    threads: dict[str, ServiceThread] = {}
    dash = BackgroundDashboard(kafka.settings, DashboardSettings(host="127.0.0.1", port=0, window_minutes=0))
    with ExitStack() as stack:
        sim_thread = SimThread(config)
        sim = sim_thread.start()
        stack.callback(sim_thread.stop)
        feed = ExitStack()  # the connector: closed early so the book stops moving
        stack.callback(feed.close)
        feed.enter_context(
            running_connector(
                kafka, sim, KRACKED_SYMBOLS=",".join(SYMBOLS), KRACKED_CHANNELS="book,trade,instrument"
            )
        )
        for name, thread in services(kafka):
            threads[name] = thread.start()
            stack.callback(thread.stop)
        port = dash.start()
        stack.callback(dash.stop)
        browser.get(f"http://127.0.0.1:{port}/#s={','.join(SYMBOLS)}&i=60")

        # 1. a bar produced while the page is open appears on the chart, with the close in kracked.bars
        first = wait_for(
            "BTC/USD bars and book",
            lambda: (
                (p := panel(browser, "BTC/USD")) and p["rows"] and int(p["chart"].get("total") or 0) and p
            ),
        )
        seen_total, seen_start = int(first["chart"]["total"]), int(first["chart"]["lastStart"])
        grown = wait_for(
            "a new BTC/USD bar",
            lambda: (p := panel(browser, "BTC/USD")) and int(p["chart"]["lastStart"] or 0) > seen_start and p,
        )
        assert int(grown["chart"]["total"]) > seen_total
        new_start = int(grown["chart"]["lastStart"])
        bar = next(
            b
            for b in read_all(kafka, Topic.BARS)
            if (b["symbol"], b["interval_s"], b["start"]) == ("BTC/USD", 60, new_start)
        )
        assert grown["chart"]["lastClose"] == bar["close"] and bar["trade_count"] > 0

        # 2. a trade-id gap injected in the simulator reaches the health panel through the connector
        # the connector's first connects (gap_end = first frame) and the books' snapshots are no gaps
        assert text(browser, "#h-gaps") == "0"
        assert sim_thread.call(sim.skip_next_trade, "BTC/USD") >= 1
        wait_for("the gap counter", lambda: text(browser, "#h-gaps") == "1")
        gaps = [c for c in read_all(kafka, Topic.CONTINUITY) if c["event"] == "trade_id_gap"]
        assert len(gaps) == 1 and gaps[0]["symbol"] == "BTC/USD" and gaps[0]["channel"] == "trade"
        assert gaps[0]["expected"] < gaps[0]["received"]
        event = browser.execute_script(ROWS_JS, '#h-events tr[data-event="trade_id_gap"]')
        assert event[1:6] == ["trade_id_gap", "connector", "trade", "BTC/USD", gaps[0]["detail"]]
        wait_for(
            "the symbol's gap",
            lambda: "gaps 1 " in text(browser, '.panel[data-symbol="BTC/USD"] .shealth'),
        )

        # 3. a signal at the book's best bid: the dry-run outcome is a marker and a row of the table
        wait_for(
            "the orders service to know the pairs",
            lambda: (
                (ends := end_offsets(kafka, Topic.INSTRUMENT))[0] > 0
                and committed(kafka, threads["orders"].runtime.options.group_id, Topic.INSTRUMENT) == ends
            ),
        )
        top = latest(read_all(kafka, Topic.BOOK_TOP), "BTC/USD", valid=True)
        assert top is not None
        signal = {
            "signal_id": SIGNAL_ID,
            "created_at": time.time_ns() // 1000,
            "strategy": STRATEGY,
            "symbol": "BTC/USD",
            "side": "buy",
            "order_type": "limit",
            "quantity": "0.01",
            "limit_price": top["bids"][0]["price"],
        }
        produce(kafka, Topic.SIGNALS, [signal])
        marked = wait_for(
            "the order's marker",
            lambda: (
                (p := panel(browser, "BTC/USD"))
                and SIGNAL_ID in p["chart"].get("markerIds", "").split(",")
                and p
            ),
        )
        assert marked["chart"]["markers"] == "1"
        orders = read_all(kafka, Topic.ORDERS)
        assert [(o["signal_id"], o["status"], o["mode"]) for o in orders] == [
            (SIGNAL_ID, "dry-run", "dry-run")
        ]
        order = orders[0]
        row = wait_for(
            "the strategy row",
            lambda: browser.execute_script(ROWS_JS, f'#strategies tr[data-strategy="{STRATEGY}"]'),
        )
        # strategy, symbol, modes, orders, dry-run, submitted, acknowledged, rejected, failed,
        # duplicate, fills, filled qty, notional, position, avg cost, realised P&L
        assert row == [
            STRATEGY, "BTC/USD", "dry-run 1", "1", "1", "0", "0", "0", "0",
            "0", "0", "0", "0", "0", "–", "–",
        ]  # fmt: skip
        recent = browser.execute_script(ROWS_JS, f'#recent-orders tr[data-id="{SIGNAL_ID}"]')
        assert recent[1:10] == [
            STRATEGY,
            "BTC/USD",
            "buy",
            "limit",
            order["quantity"],
            order["limit_price"],
            "dry-run",
            "dry-run",
            "",
        ]
        assert order["limit_price"] == signal["limit_price"]

        # what a person sees while the pipeline runs (look at it after a change to the page)
        ARTIFACTS.mkdir(exist_ok=True)
        assert browser.save_screenshot(str(ARTIFACTS / "dashboard-pipeline.png"))

        # 4. the connector stops and the book service commits everything it read: the book is final,
        # and the page must show exactly the latest kracked.book.top of each symbol
        feed.close()
        wait_for(
            "the book service to read every book record",
            lambda: (
                committed(kafka, threads["book"].runtime.options.group_id, Topic.BOOK)
                == end_offsets(kafka, Topic.BOOK)
            ),
        )
        tops = read_all(kafka, Topic.BOOK_TOP)
        for symbol in SYMBOLS:
            final = latest(tops, symbol)
            assert final is not None and final["valid"] and final["checksum_ok"]
            expected = ladder(final)
            assert len(expected) == 10

            def shows(symbol: str = symbol, expected: list[list[Any]] = expected) -> dict[str, Any] | None:
                p = panel(browser, symbol)
                return p if p is not None and shown_ladder(p) == expected else None

            shown = wait_for(f"the latest {symbol} book", shows)
            assert shown["verdict"].startswith("VERIFIED") and shown["warn"] == ""
            epoch = text(browser, f'.panel[data-symbol="{symbol}"] .epoch')
            assert epoch == f"epoch {final['epoch']} · l2 · crc {final['checksum']}"
        # the last trade (kraken.trade) and the spread (kracked.spread) are the topics' latest too
        last_trade = max(
            (t for t in read_all(kafka, Topic.TRADE) if t["symbol"] == "BTC/USD"), key=lambda t: t["trade_id"]
        )
        wait_for(
            "the last trade", lambda: (p := panel(browser, "BTC/USD")) and p["last"] == last_trade["price"]
        )

        def spread_matches() -> bool:
            point = latest(read_all(kafka, Topic.SPREAD), "BTC/USD", interval_s=60)
            p = panel(browser, "BTC/USD")
            return (
                point is not None
                and p is not None
                and p["spread"] == f"{point['close']} {point['close_bps']}"
            )

        wait_for("the latest spread", spread_matches)

    for name, thread in threads.items():
        assert thread.error is None, f"{name}: {thread.error!r}"
