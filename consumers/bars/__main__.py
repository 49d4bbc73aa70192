"""`kracked bars`: OHLCV + vwap + buy/sell volume bars from `kraken.trade` → `kracked.bars`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from consumers.bars.service import DEFAULT_INTERVALS, BarsService
from consumers.runtime import RuntimeOptions
from consumers.windowed import add_window_arguments, window_arguments
from kracked.service import common_parser, service_main
from kracked.settings import KafkaSettings


def build(args: argparse.Namespace, settings: KafkaSettings) -> tuple[BarsService, RuntimeOptions]:
    intervals, grace_ms, idle_delay_ms = window_arguments(args)
    return BarsService(intervals, grace_ms, idle_delay_ms, settings), RuntimeOptions(group_id=args.group)


def parser() -> argparse.ArgumentParser:
    p = common_parser("kracked bars", __doc__, "kracked-bars")
    add_window_arguments(p, DEFAULT_INTERVALS)
    return p


def main(argv: Sequence[str]) -> int:
    return service_main(argv, parser(), build)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
