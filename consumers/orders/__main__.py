"""`kracked orders`: signals from `kracked.signals` executed through ccxt → `kracked.orders`.

dry-run (default) checks and publishes what would be sent; validate sends with validate=true; live
needs `--live` and keys and says so loudly.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from consumers.orders.domain import Mode
from consumers.orders.service import OrdersService
from consumers.orders.settings import OrdersSettings, add_arguments
from consumers.runtime import RuntimeOptions
from kracked.service import common_parser, service_main
from kracked.settings import KafkaSettings

log = logging.getLogger("consumers.orders")


def build(args: argparse.Namespace, settings: KafkaSettings) -> tuple[OrdersService, RuntimeOptions]:
    orders = OrdersSettings.from_args(args)
    level = logging.WARNING if orders.mode is Mode.LIVE else logging.INFO
    for line in orders.banner():
        log.log(level, "%s", line)
    # one outcome at a time: commits are frequent so a restart re-reads few signals
    return OrdersService(orders, settings), RuntimeOptions(group_id=args.group, batch_size=100)


def parser() -> argparse.ArgumentParser:
    p = common_parser("kracked orders", __doc__, "kracked-orders")
    add_arguments(p)
    return p


def main(argv: Sequence[str]) -> int:
    return service_main(argv, parser(), build)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
