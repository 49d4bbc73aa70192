"""`kracked book`: verified L2/L3 order books → `kracked.book.top`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from consumers.book.service import BookService
from consumers.runtime import RuntimeOptions
from kracked.service import common_parser, positive, service_main
from kracked.settings import KafkaSettings


def build(args: argparse.Namespace, settings: KafkaSettings) -> tuple[BookService, RuntimeOptions]:
    service = BookService(
        top_n=positive("--top", args.top),
        cadence_ms=args.cadence_ms,
        level2=not args.no_l2,
        level3=not args.no_l3,
    )
    return service, RuntimeOptions(group_id=args.group)


def parser() -> argparse.ArgumentParser:
    p = common_parser("kracked book", __doc__, "kracked-book")
    p.add_argument("--top", type=int, default=10, help="levels per side in kracked.book.top (default 10)")
    p.add_argument(
        "--cadence-ms", type=int, default=0, help="publish at most every N ms per symbol (0 = every change)"
    )
    p.add_argument("--no-l2", action="store_true", help="do not read kraken.book")
    p.add_argument("--no-l3", action="store_true", help="do not read kraken.level3")
    return p


def main(argv: Sequence[str]) -> int:
    return service_main(argv, parser(), build)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
