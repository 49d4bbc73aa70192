"""The examples run: a backtest through replay → bars → strategy → orders (dry-run), and the Parquet
readers on a dataset written by the archive writer."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from consumers.parquet.writer import ParquetWriter
from schemas.topics import Topic
from tests.integration.conftest import KafkaTest
from tests.integration.helpers import produce
from tests.integration.test_orders_service import instrument_records
from tests.unit.test_bars_domain import synthetic_trades

REPO = Path(__file__).resolve().parents[2]


def run_example(name: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "examples" / name)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def test_backtest_example_runs_end_to_end_and_never_executes_twice(kafka: KafkaTest) -> None:
    kafka.create_topics(Topic.TRADE, Topic.INSTRUMENT)
    produce(kafka, Topic.INSTRUMENT, instrument_records())
    produce(kafka, Topic.TRADE, synthetic_trades(4000, seed=21))
    env = {**kafka.env_vars(), "BACKTEST_PREFIX": kafka.prefix + "backtest."}
    first = run_example("backtest.py", env)
    assert first.returncode == 0, first.stderr[-3000:]
    signals = int(re.search(r"strategy: (\d+) signals", first.stdout).group(1))  # type: ignore[union-attr]
    assert signals > 0
    assert f"orders: {{'dry-run': {signals}}}" in first.stdout
    second = run_example("backtest.py", env)
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"orders: {{'dry-run': {signals}, 'duplicate': {signals}}}" in second.stdout


def test_parquet_examples_read_the_dataset(tmp_path: Path) -> None:
    writer = ParquetWriter(tmp_path)
    for offset, trade in enumerate(synthetic_trades(500, seed=2)):
        writer.add(Topic.TRADE.value, 0, offset, trade)
    writer.flush_all()
    env = {**os.environ, "KRACKED_PARQUET_DIR": str(tmp_path), "KRACKED_TOPIC_PREFIX": ""}
    duck = run_example("parquet_duckdb.py", env)
    assert duck.returncode == 0, duck.stderr
    assert "BTC-USD" in duck.stdout and "ETH-USD" in duck.stdout
    missing = run_example("parquet_pandas.py", env)  # no book dataset written: a clear message
    assert missing.returncode == 1 and "no wide book dataset" in missing.stderr
