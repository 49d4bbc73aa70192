"""`kracked up` (what `make run` starts) against the simulator: every service comes up, data flows from
the simulator through the connector to the consumers, and SIGTERM stops every child process."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from connector.kraken.sim.config import SimConfig
from connector.kraken.sim.server import SimThread
from schemas.topics import Topic
from tests.integration.conftest import KafkaTest
from tests.integration.helpers import end_offsets
from tests.integration.test_connector_sim import connector_env

REPO = Path(__file__).resolve().parents[2]


def test_up_runs_every_service_and_stops_them_all(kafka: KafkaTest, tmp_path: Path) -> None:
    with SimThread(SimConfig(symbols=("BTC/USD",), rate=20.0, seed=2)) as sim:
        env = connector_env(
            kafka,
            sim,
            KRACKED_SYMBOLS="BTC/USD",
            KRACKED_PARQUET_DIR=str(tmp_path / "parquet"),
            KRACKED_DASHBOARD_PORT="0",
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "kracked.cli", "up"],
            env=env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 120
            flowing = False
            while time.monotonic() < deadline and not flowing:
                time.sleep(1)
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                try:
                    flowing = (
                        sum(end_offsets(kafka, Topic.BOOK_TOP).values()) > 0
                        and sum(end_offsets(kafka, Topic.BARS).values()) >= 0
                    )
                except Exception:  # topics not created yet
                    flowing = False
            assert flowing, "no kracked.book.top record within 120 s"
            children = psutil.Process(proc.pid).children(recursive=True)
            names = {" ".join(c.cmdline()[3:4]) for c in children}
            assert {"connector", "book", "bars", "spread", "parquet", "orders", "dashboard"} <= names
        finally:
            proc.send_signal(signal.SIGTERM)
            _out, err = proc.communicate(timeout=90)
        assert proc.returncode == 0, err[-2000:]
        assert "all services stopped" in err
        assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
