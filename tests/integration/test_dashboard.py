"""`kracked dashboard` in a real headless Chromium against real Kafka topics.

The topics are filled with records in the exact schema shapes (the simulator → connector → services
path is tested elsewhere); the dashboard runs in-process on port 0 and Debian's chromium, driven by
Selenium through /usr/bin/chromedriver (installed by `make browser`, never downloaded), opens the page.
The test checks what a person would see: the exact book values of kracked.book.top with the checksum
verdict, a new bar appearing on the chart, an order as a marker and in the per-strategy table, an
injected gap in the health panel, and bounded page memory after a burst. It saves a screenshot to
artifacts/dashboard.png.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from consumers.dashboard.settings import DashboardSettings
from consumers.dashboard.web import BackgroundDashboard
from schemas.topics import Topic
from tests.integration.conftest import KafkaTest
from tests.integration.helpers import produce

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1600,1600",
)
MIN = 60_000_000


# ---- records in the exact schema shapes --------------------------------------------------------
def book_top(
    symbol: str,
    bids: list[tuple[str, str]],
    asks: list[tuple[str, str]],
    ts: int,
    *,
    ok: bool = True,
    epoch: int = 1,
    offset: int = 0,
) -> dict[str, Any]:
    return {
        "symbol": symbol,
        "kind": "l2",
        "depth": 10,
        "bids": [{"price": p, "qty": q} for p, q in bids],
        "asks": [{"price": p, "qty": q} for p, q in asks],
        "checksum": 3310070434,
        "checksum_ok": ok,
        "valid": ok,
        "epoch": epoch,
        "price_precision": 1,
        "qty_precision": 8,
        "ts_event": ts,
        "ts_recv": ts,
        "ts": ts,
        "source_topic": "kraken.book",
        "source_partition": 0,
        "source_offset": offset,
    }


def bar(symbol: str, start: int, o: str, h: str, low: str, c: str, trade_id: int) -> dict[str, Any]:
    return {
        "symbol": symbol,
        "interval_s": 60,
        "start": start,
        "end": start + MIN,
        "open": o,
        "high": h,
        "low": low,
        "close": c,
        "volume": "1.25000000",
        "buy_volume": "0.75000000",
        "sell_volume": "0.50000000",
        "vwap": c,
        "trade_count": 3,
        "first_trade_id": trade_id - 2,
        "last_trade_id": trade_id,
        "source_partition": 0,
        "first_offset": trade_id - 2,
        "last_offset": trade_id,
        "ts": start + MIN,
    }


def spread(symbol: str, start: int, close: str, bps: str) -> dict[str, Any]:
    return {
        "symbol": symbol,
        "interval_s": 60,
        "start": start,
        "end": start + MIN,
        "source": "book.top",
        "open": close,
        "close": close,
        "min": "0.1",
        "max": "0.9",
        "twa": close,
        "open_bps": bps,
        "close_bps": bps,
        "min_bps": "0.0154",
        "max_bps": "0.1385",
        "twa_bps": bps,
        "sample_count": 12,
        "ts": start + MIN,
    }


def order(
    signal_id: str,
    side: str,
    ts: int,
    *,
    mode: str = "live",
    status: str = "acknowledged",
    qty: str = "0.01000000",
    price: str = "65010.5",
    filled: bool = True,
) -> dict[str, Any]:
    return {
        "signal_id": signal_id,
        "strategy": "meanrev",
        "symbol": "BTC/USD",
        "side": side,
        "order_type": "limit",
        "quantity": qty,
        "limit_price": price,
        "trigger_price": None,
        "status": status,
        "reason": None,
        "mode": mode,
        "exchange_order_id": "OQCLML-BW3P3-BUCMWZ" if mode == "live" else None,
        "client_order_id": f"cl-{signal_id}",
        "request": None,
        "attempts": 1 if mode == "live" else 0,
        "ts_signal": ts - 1000,
        "ts_received": ts - 500,
        "ts_sent": ts if mode == "live" else None,
        "ts_done": ts,
        "source_partition": 0,
        "source_offset": 0,
        "filled_qty": qty if filled else None,
        "avg_price": price if filled else None,
        "prior_status": None,
    }


def continuity(event: str, ts: int, symbol: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "event": event,
        "source": "connector",
        "channel": extra.pop("channel", None),
        "symbol": symbol,
        "gap_start": None,
        "gap_end": None,
        "expected": None,
        "received": None,
        "epoch": None,
        "detail": extra.pop("detail", event),
        "ts": ts,
        **extra,
    }


# ---- browser --------------------------------------------------------------------------------------
@pytest.fixture
def browser() -> Iterator[Any]:
    """Debian's chromium driven by Selenium; fails (never skips) when it is not installed."""
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.fail(
            "chromium/chromedriver missing: run `make browser` (apt-get install chromium chromium-driver)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="kracked-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 20.0) -> Any:
    """Poll the page until `probe` returns something truthy (no fixed sleeps)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}; last value {last!r}")


LADDER_JS = """
const p = document.querySelector('.panel[data-symbol="' + arguments[0] + '"]');
if (!p) return null;
return {
  rows: [...p.querySelectorAll('table.ladder tbody tr')].map(tr => [...tr.cells].map(c => c.textContent)),
  verdict: p.querySelector('.verdict').textContent,
  warn: p.querySelector('.warn').classList.contains('hidden') ? '' : p.querySelector('.warn').textContent,
  age: p.querySelector('.age').textContent,
  last: p.querySelector('.last-price').textContent,
  spread: p.querySelector('.spread-px').textContent + ' ' + p.querySelector('.spread-bps').textContent,
  chart: Object.assign({}, p.querySelector('canvas.price').dataset),
  depth: Object.assign({}, p.querySelector('canvas.depth').dataset),
};
"""


def panel(driver: Any, symbol: str) -> dict[str, Any] | None:
    result = driver.execute_script(LADDER_JS, symbol)
    return result if isinstance(result, dict) else None


def text(driver: Any, selector: str) -> str:
    value = driver.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;", selector
    )
    return str(value) if value is not None else ""


# ---- the test -------------------------------------------------------------------------------------
def test_dashboard_page_shows_the_topics_live(kafka: KafkaTest, browser: Any) -> None:
    kafka.create_topics(Topic.BOOK_TOP, Topic.BARS, Topic.SPREAD, Topic.ORDERS, Topic.CONTINUITY, Topic.TRADE)
    now = time.time_ns() // 1000
    base = (now // MIN - 40) * MIN  # 40 one-minute bars up to now
    btc_bids = [("65000.1", "0.50000000"), ("64999.9", "1.25000000"), ("64999.0", "3.00000000")]
    btc_asks = [("65000.2", "0.75000000"), ("65001.0", "2.00000000"), ("65002.5", "0.10000000")]
    eth_bids = [("3200.01", "10.00000000"), ("3199.50", "4.50000000")]
    eth_asks = [("3200.50", "2.00000000"), ("3201.00", "7.25000000")]
    produce(
        kafka,
        Topic.BOOK_TOP,
        [
            book_top("BTC/USD", [("1", "1")], [("2", "1")], now - 5_000_000, offset=1),
            book_top("BTC/USD", btc_bids, btc_asks, now - 1_000_000, offset=2),
            # ETH's book failed its checksum: shown, but never as good data
            book_top("ETH/USD", eth_bids, eth_asks, now - 2_000_000, ok=False, epoch=3, offset=9),
        ],
    )
    bars = []
    for k in range(40):
        px = 65000 + (k % 7) * 3 - (k % 5) * 2
        bars.append(
            bar(
                "BTC/USD",
                base + k * MIN,
                f"{px}.0",
                f"{px + 6}.5",
                f"{px - 5}.5",
                f"{px + 2}.0",
                1000 + 3 * k,
            )
        )
        bars.append(
            bar("ETH/USD", base + k * MIN, "3200.00", "3202.50", "3198.25", f"320{k % 3}.00", 500 + 3 * k)
        )
    five_min = []  # the same trades in 5 min bars: same last trade ids and closes
    for k in range(8):
        last = bars[2 * (5 * k + 4)]
        b5 = bar(
            "BTC/USD",
            base + k * 5 * MIN,
            "65000.0",
            "65010.0",
            "64990.0",
            last["close"],
            last["last_trade_id"],
        )
        five_min.append({**b5, "interval_s": 300, "end": b5["start"] + 5 * MIN, "ts": b5["start"] + 5 * MIN})
    produce(kafka, Topic.BARS, bars + five_min)
    produce(
        kafka,
        Topic.SPREAD,
        [spread("BTC/USD", base + k * MIN, f"0.{1 + k % 5}", f"0.0{154 + k}") for k in range(40)]
        + [spread("ETH/USD", base + k * MIN, "0.49", "1.5311") for k in range(40)],
    )
    produce(
        kafka,
        Topic.CONTINUITY,
        [continuity("connect", now - 60 * MIN, detail="public connection up")],
        key_field="source",
    )
    settings = DashboardSettings(host="127.0.0.1", port=0, window_minutes=0, bars_per_interval=60)
    dash = BackgroundDashboard(kafka.settings, settings)
    port = dash.start()
    try:
        browser.get(f"http://127.0.0.1:{port}/#s=BTC/USD,ETH/USD&i=60")

        # 1. the exact book values of kracked.book.top, with the verdict and the age
        btc = wait_for("BTC/USD book", lambda: (p := panel(browser, "BTC/USD")) and len(p["rows"]) == 3 and p)
        assert btc["rows"] == [
            ["0.5", "0.50000000", "65000.1", "65000.2", "0.75000000", "0.75"],
            ["1.75", "1.25000000", "64999.9", "65001.0", "2.00000000", "2.75"],
            ["4.75", "3.00000000", "64999.0", "65002.5", "0.10000000", "2.85"],
        ]
        assert btc["verdict"].startswith("VERIFIED") and btc["warn"] == ""
        assert btc["age"].startswith("age ")
        eth = wait_for("ETH/USD book", lambda: (p := panel(browser, "ETH/USD")) and p["rows"] and p)
        assert eth["rows"][0][1:5] == ["10.00000000", "3200.01", "3200.50", "2.00000000"]
        assert eth["verdict"] == "UNVERIFIED" and "not good data" in eth["warn"]
        assert eth["depth"]["verdict"] == "unverified"

        # 2. candles, last trade (from the bars' close) and spread, as received
        last_start = base + 39 * MIN
        chart = wait_for(
            "40 bars drawn",
            lambda: (p := panel(browser, "BTC/USD")) and p["chart"].get("total") == "40" and p,
        )
        assert chart["chart"]["lastStart"] == str(last_start)
        assert chart["last"] == bars[-2]["close"]
        assert chart["spread"] == "0.5 0.0193"
        # the interval switch: 5 min candles, then back to 1 min
        picker = browser.execute_script(
            "return [...document.querySelectorAll('#picker label')].map(l => l.textContent)"
        )
        assert picker == ["BTC/USD", "ETH/USD"]
        browser.execute_script("document.querySelector('#intervals button[data-interval=\"300\"]').click()")
        wait_for(
            "5 min candles",
            lambda: (
                (p := panel(browser, "BTC/USD"))
                and p["chart"].get("interval") == "300"
                and p["chart"].get("total") == "8"
            ),
        )
        browser.execute_script("document.querySelector('#intervals button[data-interval=\"60\"]').click()")
        wait_for(
            "1 min candles", lambda: (p := panel(browser, "BTC/USD")) and p["chart"].get("interval") == "60"
        )

        # 3. a new bar appears on the chart when one is produced
        produce(
            kafka,
            Topic.BARS,
            [bar("BTC/USD", base + 40 * MIN, "65010.0", "65020.5", "65005.5", "65015.0", 1200)],
        )
        wait_for(
            "the new bar",
            lambda: (p := panel(browser, "BTC/USD")) and p["chart"].get("lastStart") == str(base + 40 * MIN),
        )
        assert wait_for("last trade", lambda: (p := panel(browser, "BTC/USD")) and p["last"] == "65015.0")

        # 4. orders: markers on the chart and the per-strategy table with P&L from fills
        t_order = base + 38 * MIN + 5_000_000
        produce(
            kafka,
            Topic.ORDERS,
            [
                order("sig-buy-1", "buy", t_order, price="65000.5", qty="0.02000000"),
                order("sig-sell-1", "sell", t_order + MIN, price="65010.5", qty="0.01000000"),
                order("sig-dry-1", "buy", t_order + 2 * MIN, mode="dry-run", status="dry-run", filled=False),
            ],
            key_field="signal_id",
        )
        marked = wait_for(
            "three markers",
            lambda: (p := panel(browser, "BTC/USD")) and p["chart"].get("markers") == "3" and p,
        )
        assert set(marked["chart"]["markerIds"].split(",")) == {"sig-buy-1", "sig-sell-1", "sig-dry-1"}
        row = wait_for(
            "the strategy row",
            lambda: browser.execute_script(
                "const r = document.querySelector('#strategies tr[data-strategy=\"meanrev\"]');"
                "return r ? [...r.cells].map(c => c.textContent) : null;"
            ),
        )
        # strategy, symbol, modes, orders, dry-run, submitted, acknowledged, rejected, failed,
        # duplicate, fills, filled qty, notional, position, avg cost, realised P&L
        assert row == [
            "meanrev", "BTC/USD", "dry-run 1, live 2", "3", "1", "0", "2", "0", "0",
            "0", "2", "0.03", "1950.115", "0.01", "65000.5", "0.1",
        ]  # fmt: skip
        recent = browser.execute_script(
            "return [...document.querySelectorAll('#recent-orders tbody tr')].map(r => r.dataset.id);"
        )
        assert recent == ["sig-dry-1", "sig-sell-1", "sig-buy-1"]

        # 5. an injected gap appears in the health panel
        assert text(browser, "#h-gaps") == "0"
        produce(
            kafka,
            Topic.CONTINUITY,
            [
                continuity(
                    "trade_id_gap",
                    now,
                    "BTC/USD",
                    channel="trade",
                    expected=1201,
                    received=1206,
                    detail="trade_id 1201 expected, 1206 received",
                )
            ],
        )
        wait_for("the gap counter", lambda: text(browser, "#h-gaps") == "1")
        event = browser.execute_script(
            "const r = document.querySelector('#h-events tr[data-event=\"trade_id_gap\"]');"
            "return r ? r.textContent : null;"
        )
        assert "trade_id 1201 expected, 1206 received" in event
        assert "connector: up" in text(browser, "#h-connections")
        shealth = wait_for(
            "the symbol's gap",
            lambda: (t := text(browser, '.panel[data-symbol="BTC/USD"] .shealth')) and "gaps 1" in t and t,
        )
        assert "checksum resyncs 0" in shealth
        assert wait_for("lag shown", lambda: text(browser, "#h-lag"))
        wait_for("records counted", lambda: text(browser, "#h-records") not in ("", "0"))

        # what a person sees at this point (look at it after a change to the page)
        ARTIFACTS.mkdir(exist_ok=True)
        assert browser.save_screenshot(str(ARTIFACTS / "dashboard.png"))

        # 6. a burst of book updates: the page shows the last one, with fewer pushes than records
        before = browser.execute_script("return window.kracked.stats().messages")
        burst = [
            book_top("BTC/USD", [(f"649{50 + k % 49}.1", "0.50000000")], btc_asks, now, offset=100 + k)
            for k in range(300)
        ]
        burst.append(
            book_top("BTC/USD", [*btc_bids[:1], ("64999.5", "0.33000000")], btc_asks, now, offset=500)
        )
        produce(kafka, Topic.BOOK_TOP, burst)
        wait_for(
            "the burst's last book",
            lambda: (p := panel(browser, "BTC/USD")) and p["rows"] and p["rows"][1][2] == "64999.5",
        )
        pushed = browser.execute_script("return window.kracked.stats().messages") - before
        assert pushed < len(burst)

        # 7. bounded page memory: more bars than the limit keep only the limit
        produce(
            kafka,
            Topic.BARS,
            [
                bar("ETH/USD", base + (41 + k) * MIN, "3200.00", "3201.00", "3199.00", "3200.50", 900 + k)
                for k in range(100)
            ],
        )
        stats = wait_for(
            "the ETH bars",
            lambda: (
                (s := browser.execute_script("return window.kracked.stats()"))
                and s["views"]["ETH/USD"]["bars"] == 60
                and s
            ),
        )
        assert stats["views"]["BTC/USD"]["bars"] <= 60

    finally:
        dash.stop()
