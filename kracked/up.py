"""`kracked up`: everything on one machine — the local stack (unless a broker is given), the schemas and
topics, the connector and every consumer service, each as its own supervised child process.

A child that exits non-zero is restarted with capped exponential backoff (the services recover their
state from Kafka); SIGTERM/SIGINT stops every child (SIGTERM, then SIGKILL after a grace period) and,
with `--stack-down`, the local stack too.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from kracked.cli import available_commands
from kracked.kafka import check_broker, ensure_topics
from kracked.logs import setup_logging
from kracked.settings import KafkaSettings
from kracked.stack.local import LocalStack
from schemas.registry import register_all
from schemas.serde import registry_client
from schemas.topics import COMPACTED, Topic

log = logging.getLogger(__name__)

# The services `up` starts, in order, when their command is installed.
SERVICES = ("connector", "book", "bars", "spread", "parquet", "orders", "dashboard")


@dataclass
class Child:
    name: str
    argv: list[str]
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0
    backoff: float = field(default=1.0)


def _spawn(child: Child, env: dict[str, str]) -> None:
    child.proc = subprocess.Popen(child.argv, env=env)
    log.info("started %s (pid %d)", child.name, child.proc.pid)


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="kracked up", description=__doc__)
    parser.add_argument("--services", default=",".join(SERVICES), help="comma-separated services to run")
    parser.add_argument("--stack-down", action="store_true", help="stop the local stack on exit")
    args = parser.parse_args(argv)
    setup_logging()
    env = dict(os.environ)
    stack: LocalStack | None = None
    if not env.get("KRACKED_BOOTSTRAP_SERVERS"):
        stack = LocalStack()
        state = stack.up()
        env["KRACKED_BOOTSTRAP_SERVERS"] = state.bootstrap_servers
        env["KRACKED_SCHEMA_REGISTRY_URL"] = state.registry_url
    settings = KafkaSettings.from_env(env)
    check_broker(settings)
    register_all(
        registry_client(settings.schema_registry_url), settings.schema_registry_url, settings.topic_prefix
    )
    prefix = settings.topic_prefix
    ensure_topics(
        settings, [t.name_with(prefix) for t in Topic], compacted=[t.name_with(prefix) for t in COMPACTED]
    )
    installed = available_commands()
    wanted = [s.strip() for s in args.services.split(",") if s.strip()]
    children = [
        Child(name, [sys.executable, "-m", "kracked.cli", name]) for name in wanted if name in installed
    ]
    for name in wanted:
        if name not in installed:
            log.warning("service %s is not installed; skipped", name)
    stop = threading.Event()

    def handler(signum: int, _frame: object) -> None:
        log.info("signal %d: stopping every service", signum)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    for child in children:
        _spawn(child, env)
    while not stop.is_set():
        now = time.monotonic()
        for child in children:
            if child.proc is not None and child.proc.poll() is not None:
                code = child.proc.returncode
                child.proc = None
                if code == 2:
                    log.error("%s exited with a configuration error; not restarting", child.name)
                    continue
                child.restarts += 1
                child.next_start = now + child.backoff
                log.warning(
                    "%s exited with %s; restart %d in %.0fs", child.name, code, child.restarts, child.backoff
                )
                child.backoff = min(child.backoff * 2, 60.0)
            elif child.proc is None and child.next_start and now >= child.next_start:
                child.next_start = 0.0
                _spawn(child, env)
        stop.wait(0.5)
    for child in children:
        if child.proc is not None and child.proc.poll() is None:
            child.proc.terminate()
    deadline = time.monotonic() + 30
    for child in children:
        if child.proc is not None:
            try:
                child.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.proc.kill()
                child.proc.wait()
    if stack is not None and args.stack_down:
        stack.down()
    log.info("all services stopped")
    return 0
