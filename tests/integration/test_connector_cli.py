"""`kracked connector` as a real subprocess: metrics while running, SIGTERM → flush → exit 0."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

from connector.kraken.sim.config import SimConfig
from connector.kraken.sim.server import SimThread
from schemas.topics import Topic
from tests.integration.conftest import KafkaTest
from tests.integration.helpers import read_all
from tests.integration.test_connector_sim import connector_env, wait_for


def _kracked() -> list[str]:
    script = Path(sys.executable).with_name("kracked")
    if script.exists():
        return [str(script)]
    found = shutil.which("kracked")
    return [found] if found else [sys.executable, "-m", "kracked.cli"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _metric(text: str, name: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_cli_runs_serves_metrics_and_stops_cleanly_on_sigterm(kafka: KafkaTest) -> None:
    kafka.create_topics(Topic.BOOK, Topic.TRADE, Topic.CONTINUITY, Topic.DEADLETTER)
    port = _free_port()
    with SimThread(SimConfig(symbols=("BTC/USD",), rate=30.0)) as sim:
        env = connector_env(kafka, sim, KRACKED_SYMBOLS="BTC/USD", KRACKED_CHANNELS="book,trade")
        env.pop("KRACKED_KRAKEN_API_KEY")
        env.pop("KRACKED_KRAKEN_API_SECRET")
        proc = subprocess.Popen(
            [*_kracked(), "connector", "--metrics-port", str(port)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            metrics = ""

            def books_counted() -> bool:
                nonlocal metrics
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
                        metrics = resp.read().decode()
                except OSError:
                    return False
                return _metric(metrics, 'kracked_connector_frames_total{channel="book"}') >= 20

            wait_for(books_counted, timeout=90, what="book frames in the metrics")
            assert _metric(metrics, 'kracked_connector_records_total{topic="kraken.book"}') >= 1
            assert (
                "kracked_connector_reconnects_total" in metrics or "kracked_connector_frames_total" in metrics
            )
            proc.send_signal(signal.SIGTERM)
            _, stderr = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 0, stderr[-2000:]
    assert "SIGTERM received: stopping" in stderr
    assert "stopped: every record delivered" in stderr
    assert "kracked-sim-key" not in stderr  # no secret (none was set here) and no key in logs
    books = read_all(kafka, Topic.BOOK)
    assert len(books) >= 20 and all(b["checksum_ok"] is True for b in books)
    continuity = read_all(kafka, Topic.CONTINUITY)
    assert any(c["event"] == "disconnect" and "stopping" in c["detail"] for c in continuity)


def test_cli_bad_configuration_exits_2_with_one_line() -> None:
    env = {
        **os.environ,
        "KRACKED_BOOTSTRAP_SERVERS": "127.0.0.1:9",
        "KRACKED_SCHEMA_REGISTRY_URL": "http://x",
    }
    proc = subprocess.run(
        [*_kracked(), "connector", "--book-depth", "7"], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "KRACKED_BOOK_DEPTH=7" in lines[0]


def test_cli_unreachable_broker_exits_2(kafka: KafkaTest) -> None:
    env = {
        **os.environ,
        "KRACKED_BOOTSTRAP_SERVERS": f"127.0.0.1:{_free_port()}",
        "KRACKED_SCHEMA_REGISTRY_URL": kafka.settings.schema_registry_url,
        "KRACKED_KRAKEN_WS_URL": "ws://127.0.0.1:9/v2",
    }
    proc = subprocess.run([*_kracked(), "connector"], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Kafka broker unreachable" in proc.stderr.strip().splitlines()[-1]
