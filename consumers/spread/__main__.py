"""`kracked spread`: bid/ask spread statistics per symbol and interval → `kracked.spread`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from consumers.bars.domain import parse_interval
from consumers.runtime import RuntimeOptions
from consumers.spread.service import DEFAULT_INTERVALS, SOURCES, SpreadService
from kracked.errors import ConfigError
from kracked.service import common_parser, service_main
from kracked.settings import KafkaSettings


def build(args: argparse.Namespace, settings: KafkaSettings) -> tuple[SpreadService, RuntimeOptions]:
    try:
        intervals = tuple(parse_interval(v) for v in args.intervals.split(",") if v.strip())
    except ValueError as exc:
        raise ConfigError(f"--intervals: {exc}") from None
    if not intervals or args.grace_ms < 0 or args.idle_delay_ms < 0:
        raise ConfigError(
            "--intervals must name at least one interval; --grace-ms/--idle-delay-ms must be ≥ 0"
        )
    service = SpreadService(args.source, intervals, args.grace_ms, args.idle_delay_ms, settings)
    return service, RuntimeOptions(group_id=args.group)


def parser() -> argparse.ArgumentParser:
    p = common_parser("kracked spread", __doc__, "kracked-spread")
    default = ",".join(f"{s // 60}m" for s in DEFAULT_INTERVALS)
    p.add_argument(
        "--source", choices=sorted(SOURCES), default="book.top", help="kraken.ticker or kracked.book.top"
    )
    p.add_argument("--intervals", default=default, help=f"intervals, e.g. 1s,1m,1h (default {default})")
    p.add_argument(
        "--grace-ms", type=int, default=2000, help="how long after its end a window accepts late samples"
    )
    p.add_argument(
        "--idle-delay-ms", type=int, default=2000, help="wall-clock lag used to close windows when idle"
    )
    return p


def main(argv: Sequence[str]) -> int:
    return service_main(argv, parser(), build)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
