"""`kracked stack up | down | status`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from kracked.logs import setup_logging
from kracked.stack.local import LocalStack


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="kracked stack", description=__doc__)
    parser.add_argument("action", choices=["up", "down", "status"])
    parser.add_argument(
        "--home", type=Path, default=None, help="state folder (default .kracked or $KRACKED_HOME)"
    )
    parser.add_argument(
        "--kafka-port", type=int, default=0, help="broker port on 127.0.0.1 (0 = any free port)"
    )
    parser.add_argument(
        "--registry-port", type=int, default=0, help="registry port on 127.0.0.1 (0 = any free port)"
    )
    args = parser.parse_args(argv)
    setup_logging()
    stack = LocalStack(args.home)
    if args.action == "up":
        state = stack.up(args.kafka_port, args.registry_port)
        print(f"KRACKED_BOOTSTRAP_SERVERS={state.bootstrap_servers}")
        print(f"KRACKED_SCHEMA_REGISTRY_URL={state.registry_url}")
        print(f"# written to {stack.env_file}", file=sys.stderr)
        return 0
    if args.action == "down":
        print("stack stopped" if stack.down() else "stack was not running")
        return 0
    status = stack.status()
    print(json.dumps(status, indent=2))
    return 0 if all(str(v).startswith("up") for k, v in status.items() if k != "env_file") else 3
