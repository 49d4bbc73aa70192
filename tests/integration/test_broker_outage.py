"""The broker stops for 30 s mid-stream and starts again: the connector keeps every record the
simulator delivered (none lost, none duplicated — the simulator numbers its trades), and memory stays
bounded meanwhile. Uses a broker of its own (a second local stack) so it can be stopped."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import psutil

from connector.kraken.sim.config import SimConfig
from connector.kraken.sim.server import SimThread
from kracked.settings import KafkaSettings
from kracked.stack.local import LocalStack
from schemas.topics import Topic
from tests.integration.conftest import KafkaEnv, KafkaTest
from tests.integration.helpers import read_all
from tests.integration.test_connector_sim import by_symbol, frames, running_connector, wait_for

SYMBOLS = ("BTC/USD", "ETH/USD")
OUTAGE_S = 30


def test_broker_stopped_for_30s_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    stack = LocalStack(tmp_path / "outage-stack")
    state = stack.up()
    try:
        env = KafkaEnv(state.bootstrap_servers, state.registry_url, "local-stack")
        kafka = KafkaTest(
            env, KafkaSettings(env.bootstrap_servers, env.schema_registry_url, f"o{uuid.uuid4().hex[:8]}.")
        )
        kafka.create_topics(Topic.BOOK, Topic.TRADE, Topic.CONTINUITY, Topic.DEADLETTER)
        process = psutil.Process()
        with SimThread(SimConfig(symbols=SYMBOLS, rate=100.0, seed=11)) as sim:
            with running_connector(
                kafka, sim, KRACKED_SYMBOLS=",".join(SYMBOLS), KRACKED_CHANNELS="book,trade"
            ) as app:
                wait_for(lambda: frames(app, "trade") >= 200, what="trades before the outage")
                rss_before = process.memory_info().rss
                stack.stop_kafka()
                peak = rss_before
                deadline = time.monotonic() + OUTAGE_S
                while time.monotonic() < deadline:
                    peak = max(peak, process.memory_info().rss)
                    time.sleep(0.5)
                during = frames(app, "trade")
                stack.start_kafka()
                wait_for(
                    lambda: frames(app, "trade") >= during + 200, timeout=120, what="trades after the outage"
                )
            sent = {s: sim.trades_sent(s) for s in SYMBOLS}
        assert peak - rss_before < 150 * 2**20, (
            f"memory grew by {(peak - rss_before) / 2**20:.0f} MiB during the outage"
        )
        trades = by_symbol(read_all(kafka, Topic.TRADE, timeout=120))
        for symbol in SYMBOLS:
            ids = [t["trade_id"] for t in trades[symbol]]
            assert len(ids) == len(set(ids)), "a trade was published twice"
            # Trades the simulator wrote after the connector stopped reading (its shutdown) are the only
            # ones allowed to be absent: every trade up to the last one read must be in Kafka.
            missing = {t for t in set(sent[symbol]) - set(ids) if t <= max(ids)}
            assert not missing, f"{len(missing)} trades the simulator delivered are not in Kafka"
            assert len(sent[symbol]) > 400
    finally:
        stack.down()
