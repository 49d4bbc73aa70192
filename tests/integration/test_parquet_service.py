"""`kracked parquet` on a real broker, killed with SIGKILL at random moments (≥ 10 times) while it
archives a growing topic: afterwards the Parquet rows equal the topic's records exactly — none lost,
none duplicated — and DuckDB and pandas read the dataset directly."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from schemas.topics import Topic
from tests.integration.conftest import KafkaTest
from tests.integration.helpers import produce, read_all
from tests.unit.test_bars_domain import synthetic_trades

REPO = Path(__file__).resolve().parents[2]


def start(kafka: KafkaTest, root: Path, group: str, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kracked.cli",
            "parquet",
            "--dir",
            str(root),
            "--topics",
            "kraken.trade",
            "--group",
            group,
            "--max-rows",
            "700",
            "--max-age-s",
            "0.3",
            "--commit-interval-s",
            "0.2",
            "--compact-every-s",
            "1",
            *extra,
        ],
        env=kafka.env_vars(),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_assigned(proc: subprocess.Popen[str]) -> None:
    """Block until the service logs its partition assignment (it is then consuming)."""
    assert proc.stderr is not None
    for line in proc.stderr:
        if "parquet: assigned" in line:
            return
    raise AssertionError(f"parquet exited before being assigned (rc {proc.wait()})")


def test_kill_9_at_random_moments_loses_and_duplicates_nothing(kafka: KafkaTest, tmp_path: Path) -> None:
    kafka.create_topics(Topic.TRADE, Topic.DEADLETTER, partitions=2)
    rng = random.Random(1234)
    trades = synthetic_trades(26_000, seed=99, symbols=("BTC/USD", "ETH/USD", "DOGE/USD"))
    produce(kafka, Topic.TRADE, trades[:6000])
    root = tmp_path / "dataset"
    group = kafka.group("parquet")
    sent = 6000
    for _ in range(10):
        proc = start(kafka, root, group)
        wait_assigned(proc)
        time.sleep(rng.uniform(0.1, 1.5))  # mid-work: files being written, renamed, compacted, committed
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        produce(kafka, Topic.TRADE, trades[sent : sent + 2000])
        sent += 2000
    final = start(kafka, root, group, "--stop-when-idle", "4")
    _out, err = final.communicate(timeout=240)
    assert final.returncode == 0, err[-2000:]

    records = read_all(kafka, Topic.TRADE)
    assert len(records) == len(trades)
    table = pd.read_parquet(root / kafka.topic(Topic.TRADE))
    assert len(table) == len(records), "rows lost or duplicated"
    got = sorted(
        (
            str(r.symbol).replace("-", "/"),
            int(r.trade_id),
            Decimal(r.price),
            Decimal(r.qty),
            int(r.ts_event.value // 1000),
        )
        for r in table.itertuples()
    )
    want = sorted(
        (t["symbol"], t["trade_id"], Decimal(t["price"]), Decimal(t["qty"]), t["ts_event"]) for t in records
    )
    assert got == want

    con = duckdb.connect()
    glob = str(root / kafka.topic(Topic.TRADE) / "**" / "*.parquet")
    rows: Any = con.execute(
        f"select count(*), count(distinct symbol || trade_id), typeof(any_value(price)), typeof(any_value(ts_event)) "
        f"from read_parquet('{glob}', hive_partitioning=true)"
    ).fetchone()
    assert rows[0] == rows[1] == len(records)
    assert rows[2] == "DECIMAL(38,18)" and rows[3] == "TIMESTAMP WITH TIME ZONE"
    files = list((root / kafka.topic(Topic.TRADE)).rglob("*.parquet"))
    assert not list(root.rglob(".tmp*")), "temporary files left behind"
    assert len(files) < 60, f"compaction should keep the file count low, found {len(files)}"
