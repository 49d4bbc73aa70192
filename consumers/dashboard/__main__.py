"""`kracked dashboard`: a live web page (books, candles, spreads, orders, feed health) on the topics."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence

from consumers.dashboard.settings import DashboardSettings, add_arguments
from consumers.dashboard.web import Dashboard
from kracked import metrics
from kracked.kafka import check_broker
from kracked.logs import setup_logging
from kracked.service import kafka_settings, metrics_port
from kracked.settings import KafkaSettings

log = logging.getLogger(__name__)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kracked dashboard", description=__doc__)
    add_arguments(p)
    p.add_argument("--topic-prefix", default=None, help="overrides KRACKED_TOPIC_PREFIX")
    p.add_argument("--metrics-port", type=int, default=None, help="Prometheus port (KRACKED_METRICS_PORT)")
    p.add_argument("--log-level", default=None, help="overrides KRACKED_LOG_LEVEL")
    return p


async def serve(kafka: KafkaSettings, settings: DashboardSettings) -> int:
    """Run until SIGINT/SIGTERM, then close the page connections and the consumer."""
    dashboard = Dashboard(kafka, settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    await dashboard.start()
    try:
        await stop.wait()
    finally:
        log.info("dashboard stopping")
        await dashboard.stop()
    return 0


def main(argv: Sequence[str]) -> int:
    args = parser().parse_args(list(argv))
    setup_logging(args.log_level)
    kafka = kafka_settings(args)
    settings = DashboardSettings.from_args(args)
    check_broker(kafka)
    metrics.serve(metrics_port(args))
    return asyncio.run(serve(kafka, settings))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
