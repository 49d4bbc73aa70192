"""Soak: the dashboard page under 50 book updates/s per symbol (plus a bar a second), for a long time.

Produces `kracked.book.top` records for two symbols at `--rate` per second each and one `kracked.bars`
record per symbol per second into a fresh topic prefix, serves the dashboard, opens the page in Debian's
headless chromium (both symbols open), and every `--sample` seconds reads the page's JS heap
(`performance.memory.usedJSHeapSize`, after a forced GC when available) and how far the page's ladder
lags behind the newest record produced. Prints one line per sample and a summary: heap first / max /
last and the least-squares slope per hour, and the worst lag. Not a test: a measurement.

Usage: `python bench/soak_dashboard.py --minutes 60 [--rate 50]` with a broker (stack.env or KRACKED_*).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from consumers.dashboard.settings import DashboardSettings  # noqa: E402
from consumers.dashboard.web import BackgroundDashboard  # noqa: E402
from kracked.kafka import ensure_topics, make_producer  # noqa: E402
from kracked.settings import KafkaSettings  # noqa: E402
from schemas.serde import Serde  # noqa: E402
from schemas.topics import Topic  # noqa: E402
from tests.integration.test_dashboard import CHROMEDRIVER, CHROMIUM, CHROMIUM_FLAGS  # noqa: E402

SYMBOLS = ("BTC/USD", "ETH/USD")


def top(symbol: str, i: int, ts: int) -> dict[str, Any]:
    base = 30000 + (i % 200) if symbol == "BTC/USD" else 2000 + (i % 50)
    return {
        "symbol": symbol,
        "kind": "l2",
        "depth": 10,
        "bids": [{"price": f"{base - k}.{i % 10}", "qty": f"{1 + k}.{i % 7:08d}"} for k in range(10)],
        "asks": [{"price": f"{base + 1 + k}.{i % 10}", "qty": f"{2 + k}.{i % 5:08d}"} for k in range(10)],
        "checksum": i,
        "checksum_ok": True,
        "valid": True,
        "epoch": 1,
        "price_precision": 1,
        "qty_precision": 8,
        "ts_event": ts,
        "ts_recv": ts,
        "ts": ts,
        "source_topic": "kraken.book",
        "source_partition": 0,
        "source_offset": i,
    }


def bar(symbol: str, second: int) -> dict[str, Any]:
    start = second * 1_000_000
    return {
        "symbol": symbol, "interval_s": 60, "start": start, "end": start + 60_000_000,
        "open": "100.0", "high": "101.0", "low": "99.0", "close": f"{100 + second % 3}.0",
        "volume": "1.0", "buy_volume": "0.5", "sell_volume": "0.5", "vwap": "100.0", "trade_count": 3,
        "first_trade_id": second, "last_trade_id": second + 2, "source_partition": 0, "first_offset": 0,
        "last_offset": 2, "ts": start + 60_000_000,
    }  # fmt: skip


def feeder(settings: KafkaSettings, rate: float, stop: threading.Event, last: dict[str, int]) -> None:
    serde = Serde(settings.schema_registry_url, settings.topic_prefix)
    producer = make_producer(settings)
    i = 0
    t0 = time.monotonic()
    while not stop.is_set():
        ts = time.time_ns() // 1000
        for symbol in SYMBOLS:
            producer.produce(
                Topic.BOOK_TOP.name_with(settings.topic_prefix),
                key=symbol.encode(),
                value=serde.encode(Topic.BOOK_TOP, top(symbol, i, ts)),
            )
            last[symbol] = i
        if i % int(rate) == 0:
            for symbol in SYMBOLS:
                second = ts // 1_000_000
                producer.produce(
                    Topic.BARS.name_with(settings.topic_prefix),
                    key=symbol.encode(),
                    value=serde.encode(Topic.BARS, bar(symbol, second)),
                )
        producer.poll(0)
        i += 1
        time.sleep(max(0.0, t0 + i / rate - time.monotonic()))
    producer.flush(10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=50.0, help="book.top updates per second per symbol")
    parser.add_argument("--sample", type=float, default=60.0, help="seconds between samples")
    args = parser.parse_args()
    base = KafkaSettings.from_env()
    settings = KafkaSettings(base.bootstrap_servers, base.schema_registry_url, f"soak{uuid.uuid4().hex[:6]}.")
    ensure_topics(settings, [t.name_with(settings.topic_prefix) for t in Topic])
    stop = threading.Event()
    last: dict[str, int] = {}
    thread = threading.Thread(target=feeder, args=(settings, args.rate, stop, last), daemon=True)
    thread.start()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, "--js-flags=--expose-gc", "--enable-precise-memory-info"):
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="kracked-soak-")
    options.add_argument(f"--user-data-dir={profile}")
    dashboard = BackgroundDashboard(settings, DashboardSettings(port=0))
    port = dashboard.start()
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    samples: list[tuple[float, int, int]] = []
    try:
        driver.get(f"http://127.0.0.1:{port}/#s={','.join(SYMBOLS)}&i=60")
        start = time.monotonic()
        end = start + args.minutes * 60
        while time.monotonic() < end:
            time.sleep(min(args.sample, max(0.0, end - time.monotonic())))
            heap = driver.execute_script(
                "if (window.gc) { window.gc(); } return performance.memory.usedJSHeapSize;"
            )
            shown = driver.execute_script(
                "const p = document.querySelector('.panel[data-symbol=\"BTC/USD\"]');"
                "const r = p && p.querySelector('table.ladder tbody tr'); return r ? r.textContent : '';"
            )
            newest = last.get("BTC/USD", 0)
            # the ladder's first bid price carries the record number modulo 200 (see `top`): lag in records
            lag = -1
            for back in range(0, 400):
                if f"{30000 + ((newest - back) % 200) - 0}.{(newest - back) % 10}" in str(shown):
                    lag = back
                    break
            minute = (time.monotonic() - start) / 60
            samples.append((minute, int(heap), lag))
            print(
                f"{minute:6.1f} min  heap {int(heap) / 2**20:7.2f} MiB  ladder lag {lag} records", flush=True
            )
    finally:
        stop.set()
        driver.quit()
        dashboard.stop()
        shutil.rmtree(profile, ignore_errors=True)
    if len(samples) >= 2:
        xs = [s[0] for s in samples]
        ys = [s[1] / 2**20 for s in samples]
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / max(
            1e-9, sum((x - mx) ** 2 for x in xs)
        )
        print(
            f"summary: {len(samples)} samples over {xs[-1]:.0f} min at {args.rate:.0f} updates/s/symbol: heap first {ys[0]:.2f} MiB, "
            f"max {max(ys):.2f} MiB, last {ys[-1]:.2f} MiB, slope {slope * 60:+.3f} MiB/hour; worst ladder lag "
            f"{max(s[2] for s in samples)} records (-1 = not found)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
