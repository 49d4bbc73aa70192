"""Benchmark: simulator at maximum rate → connector → Kafka, against a bare baseline in the same run.

    python bench/bench_connector.py [--seconds 15] [--repeat 3] [--mode replay|synthetic] [--outage-seconds 60]

Needs a broker and a registry (KRACKED_BOOTSTRAP_SERVERS / KRACKED_SCHEMA_REGISTRY_URL, or the local
stack of `kracked stack up`). The simulator runs as a `kracked sim --rate max` subprocess pinned to one
CPU; the measured process is pinned to another (one core: the event loop and librdkafka's threads).

* baseline: WebSocket receive + produce of the raw frame bytes, no parsing (same subscriptions);
* connector: the real `ConnectorApp` (parse, verify every book checksum, map, Avro-encode, produce);
* outage (optional): the connector with the broker unreachable, to show that back-pressure keeps
  memory bounded (peak RSS) instead of queueing without limit.

`--mode replay` loops real Kraken captures (book + trade of BTC/USD and ETH/USD, Kraken's own frame
text and checksums); `--mode synthetic` uses the seeded market (book, trade, ticker, ohlc), which the
simulator itself cannot produce as fast. Prints frames/s, records/s and the ratio to the baseline.
Not a test: no assertion on timing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from connector.app import ConnectorApp  # noqa: E402
from connector.publisher import PRODUCER_OVERRIDES, Publisher  # noqa: E402
from connector.settings import ConnectorSettings  # noqa: E402
from kracked.kafka import ensure_topics, make_admin, make_producer  # noqa: E402
from kracked.settings import KafkaSettings  # noqa: E402
from schemas.serde import Serde  # noqa: E402
from schemas.topics import Topic  # noqa: E402

CAPTURES = ROOT / "tests" / "fixtures" / "kraken"
REPLAY_FILE = CAPTURES / "crypto-tracker_btc-eth_book-trade.jsonl"


def _cpus() -> tuple[int, int]:
    cpus = sorted(os.sched_getaffinity(0))
    return (cpus[0], cpus[-1]) if len(cpus) > 1 else (cpus[0], cpus[0])


def start_sim(mode: str, symbols: list[str], cpu: int) -> tuple[subprocess.Popen[str], str]:
    cmd = [sys.executable, "-m", "kracked.cli", "sim", "--rate", "max", "--symbols", ",".join(symbols)]
    if mode == "replay":
        cmd += ["--replay", str(REPLAY_FILE), "--replay-loop"]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
        env={**os.environ, "KRACKED_LOG_LEVEL": "WARNING"},
        preexec_fn=lambda: os.sched_setaffinity(0, {cpu}),
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("KRACKED_KRAKEN_WS_URL="):
        proc.kill()
        raise SystemExit(f"simulator did not start: {line!r}")
    return proc, line.split("=", 1)[1]


# ------------------------------------------------------------------------------------------------ baseline


async def baseline(
    url: str, channels: list[str], symbols: list[str], kafka: KafkaSettings, seconds: float, warmup: float
) -> float:
    producer = make_producer(kafka)
    topic = f"{kafka.topic_prefix}bench.raw"
    count = 0
    stop = False

    async def reader() -> None:
        nonlocal count
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(url, compress=0, max_msg_size=64 * 2**20) as ws,
        ):
            for i, channel in enumerate(channels):
                params: dict[str, Any] = {"channel": channel, "symbol": symbols}
                await ws.send_str(json.dumps({"method": "subscribe", "params": params, "req_id": i + 1}))
            produce = producer.produce
            while not stop:
                msg = await ws.receive()
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    break
                value = msg.data.encode()
                while True:
                    try:
                        produce(topic, value)
                        break
                    except BufferError:
                        producer.poll(0.01)
                count += 1
                if count % 5000 == 0:
                    producer.poll(0)

    task = asyncio.create_task(reader())
    await asyncio.sleep(warmup)
    c0, t0 = count, time.perf_counter()
    await asyncio.sleep(seconds)
    c1, t1 = count, time.perf_counter()
    stop = True
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
    producer.flush(60)
    return (c1 - c0) / (t1 - t0)


# ------------------------------------------------------------------------------------------------ connector


def totals(app: ConnectorApp) -> tuple[int, int]:
    assert app.pipeline is not None and app.publisher is not None
    frames = sum(app.pipeline.frames.values()) + app.pipeline.malformed
    records = sum(app.publisher.produced.values())
    return frames, records


async def connector(
    settings: ConnectorSettings,
    seconds: float,
    warmup: float,
    app_cls: type[ConnectorApp] = ConnectorApp,
    sample_rss: bool = False,
) -> dict[str, float]:
    app = app_cls(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(app.run(stop))
    while not app.ready.is_set():
        if task.done():
            task.result()
        await asyncio.sleep(0.05)
    await asyncio.sleep(warmup)
    (f0, r0), t0 = totals(app), time.perf_counter()
    peak = 0
    proc = psutil.Process()
    end = t0 + seconds
    while time.perf_counter() < end:
        await asyncio.sleep(0.25)
        if sample_rss:
            peak = max(peak, proc.memory_info().rss)
    (f1, r1), t1 = totals(app), time.perf_counter()
    stop.set()
    if sample_rss:
        # the broker never comes back here: do not wait for the flush
        app.settings = replace(app.settings, flush_timeout=0.5)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(task, 120)
    pub, pipe = app.publisher, app.pipeline
    assert pub is not None and pipe is not None
    return {
        "frames_per_s": (f1 - f0) / (t1 - t0),
        "records_per_s": (r1 - r0) / (t1 - t0),
        "mismatches": sum(pipe.checksum_mismatches.values()),
        "dead_letters": sum(pub.dead_letters.values()),
        "blocked_s": pub.blocked_seconds + (time.monotonic() - pub._blocked_at if pub.blocked else 0.0),
        "peak_rss_mb": peak / 2**20,
        "frames_total": f1,
    }


class OutageApp(ConnectorApp):
    """The connector with the broker gone: schemas registered on the live registry, but every record
    is produced to a bootstrap address where nothing listens (as if the broker stopped)."""

    def _kafka(self) -> Publisher:
        s = self.settings
        serde = Serde(s.kafka.schema_registry_url, s.kafka.topic_prefix)
        dead = replace(s.kafka, bootstrap_servers="127.0.0.1:9")
        holder: list[Publisher] = []
        producer = make_producer(
            dead,
            **PRODUCER_OVERRIDES,
            on_delivery=lambda err, msg: holder[0].on_delivery(err, msg),
            error_cb=lambda err: holder[0].on_error(err),
        )
        pub = Publisher(producer, serde, s.source)
        holder.append(pub)
        pub.prepare(
            [
                Topic.BOOK,
                Topic.TRADE,
                Topic.TICKER,
                Topic.OHLC,
                Topic.INSTRUMENT,
                Topic.CONTINUITY,
                Topic.DEADLETTER,
            ]
        )
        return pub


def run_loop(coro: Any) -> Any:
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.run(coro)
    return uvloop.run(coro)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=15.0, help="measured seconds per phase")
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--repeat", type=int, default=3, help="baseline/connector pairs, alternating")
    p.add_argument("--mode", choices=("replay", "synthetic"), default="replay")
    p.add_argument(
        "--outage-seconds", type=float, default=0.0, help="also run a broker outage this long (RSS)"
    )
    args = p.parse_args()

    sim_cpu, my_cpu = _cpus()
    os.sched_setaffinity(0, {my_cpu})  # before any thread: librdkafka's threads inherit it
    import logging

    logging.basicConfig(level=logging.WARNING)
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    kafka = replace(KafkaSettings.from_env(), topic_prefix=prefix)
    if args.mode == "replay":
        symbols, channels = ["BTC/USD", "ETH/USD"], ["book", "trade"]
    else:
        symbols, channels = ["BTC/USD", "ETH/USD", "SOL/USD", "XRP/USD"], ["book", "trade", "ticker", "ohlc"]
    names = [f"{prefix}bench.raw"] + [
        t.name_with(prefix)
        for t in Topic
        if t.channel in channels or t in (Topic.CONTINUITY, Topic.DEADLETTER, Topic.INSTRUMENT)
    ]
    ensure_topics(kafka, names)
    results: dict[str, Any] = {}
    try:
        env = {**os.environ, "KRACKED_TOPIC_PREFIX": prefix}
        env.update(
            KRACKED_BOOTSTRAP_SERVERS=kafka.bootstrap_servers,
            KRACKED_SCHEMA_REGISTRY_URL=kafka.schema_registry_url,
            KRACKED_KRAKEN_WS_URL="ws://127.0.0.1:9/v2",  # replaced by each run's simulator
        )
        env.update(KRACKED_SYMBOLS=",".join(symbols), KRACKED_CHANNELS=",".join(channels))
        env.pop("KRACKED_KRAKEN_API_KEY", None)
        settings = ConnectorSettings.from_env(env)
        # baseline and connector alternate, each run against a fresh simulator: a machine that gets
        # busier or quieter during the benchmark then moves both figures, not just one of them
        bases: list[float] = []
        runs: list[dict[str, float]] = []
        for _ in range(max(1, args.repeat)):
            sim, url = start_sim(args.mode, symbols, sim_cpu)
            try:
                bases.append(run_loop(baseline(url, channels, symbols, kafka, args.seconds, args.warmup)))
            finally:
                sim.terminate()
                sim.wait(10)
            sim, url = start_sim(args.mode, symbols, sim_cpu)
            try:
                runs.append(run_loop(connector(replace(settings, ws_url=url), args.seconds, args.warmup)))
            finally:
                sim.terminate()
                sim.wait(10)
            print(
                f"run {len(runs)}: baseline {bases[-1]:,.0f} frames/s, connector {runs[-1]['frames_per_s']:,.0f} "
                f"frames/s, ratio {runs[-1]['frames_per_s'] / bases[-1]:.2f}",
                flush=True,
            )
        ratios = sorted(r["frames_per_s"] / b for r, b in zip(runs, bases, strict=True) if b)
        conn = runs[-1]
        results = {
            "mode": args.mode,
            "baseline_frames_per_s": [round(b) for b in bases],
            "frames_per_s": [round(r["frames_per_s"]) for r in runs],
            "records_per_s": [round(r["records_per_s"]) for r in runs],
            "ratios_to_baseline": [round(r, 3) for r in ratios],
            "median_ratio": round(ratios[len(ratios) // 2], 3) if ratios else None,
            **{k: round(v, 1) for k, v in conn.items() if k in ("mismatches", "dead_letters")},
        }
        if args.outage_seconds:
            sim, url = start_sim(args.mode, symbols, sim_cpu)
            try:
                outage_settings = replace(settings, ws_url=url, flush_timeout=0.5)
                out = run_loop(
                    connector(outage_settings, args.outage_seconds, 1.0, OutageApp, sample_rss=True)
                )
            finally:
                sim.terminate()
                sim.wait(10)
            results["outage_seconds"] = args.outage_seconds
            results["outage_peak_rss_mb"] = round(out["peak_rss_mb"], 1)
            results["outage_backpressure_s"] = round(out["blocked_s"], 1)
            results["outage_frames_read"] = int(out["frames_total"])
    finally:
        with contextlib.suppress(Exception):
            make_admin(kafka).delete_topics(names, operation_timeout=30)
    print(json.dumps(results, indent=2))
    fps, rps, base = results["frames_per_s"], results["records_per_s"], results["baseline_frames_per_s"]
    print(
        f"connector {min(fps):,}–{max(fps):,} frames/s, {min(rps):,}–{max(rps):,} records/s on one core; "
        f"baseline (receive + produce raw) {min(base):,}–{max(base):,} frames/s; ratio "
        f"{min(results['ratios_to_baseline'])}–{max(results['ratios_to_baseline'])} "
        f"(median {results['median_ratio']}); targets ≥ 50,000 frames/s and ≥ 0.5"
    )
    return 0


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    sys.exit(main())
