"""`kracked spread`: bid/ask spread statistics per symbol and interval → `kracked.spread`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from consumers.runtime import RuntimeOptions
from consumers.spread.service import DEFAULT_INTERVALS, SOURCES, SpreadService
from consumers.windowed import add_window_arguments, window_arguments
from kracked.service import common_parser, service_main
from kracked.settings import KafkaSettings


def build(args: argparse.Namespace, settings: KafkaSettings) -> tuple[SpreadService, RuntimeOptions]:
    intervals, grace_ms, idle_delay_ms = window_arguments(args)
    service = SpreadService(args.source, intervals, grace_ms, idle_delay_ms, settings)
    return service, RuntimeOptions(group_id=args.group)


def parser() -> argparse.ArgumentParser:
    p = common_parser("kracked spread", __doc__, "kracked-spread")
    p.add_argument(
        "--source", choices=sorted(SOURCES), default="book.top", help="kraken.ticker or kracked.book.top"
    )
    add_window_arguments(p, DEFAULT_INTERVALS)
    return p


def main(argv: Sequence[str]) -> int:
    return service_main(argv, parser(), build)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
