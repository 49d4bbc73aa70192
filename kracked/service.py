"""The shape every consumer service's `__main__` shares: common flags, settings, metrics, run.

A service module provides `build(args, settings) -> (Service, RuntimeOptions)`; `service_main` parses the
common flags (`--group`, `--metrics-port`, `--topic-prefix`, `--from-beginning`) plus the service's
own, builds it and runs it on the consumer runtime. This lives in the plumbing so every service
looks the same to a reader and to an operator.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from typing import Any

from kracked.errors import ConfigError
from kracked.logs import setup_logging
from kracked.settings import KafkaSettings, env_int


def common_parser(prog: str, description: str | None, default_group: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--group", default=default_group, help=f"consumer group (default {default_group})")
    parser.add_argument(
        "--metrics-port", type=int, default=None, help="Prometheus port (KRACKED_METRICS_PORT)"
    )
    parser.add_argument("--topic-prefix", default=None, help="overrides KRACKED_TOPIC_PREFIX")
    parser.add_argument("--log-level", default=None, help="overrides KRACKED_LOG_LEVEL")
    parser.add_argument(
        "--stop-when-idle",
        type=float,
        default=None,
        help="stop after this many seconds without input (replays)",
    )
    return parser


def kafka_settings(args: argparse.Namespace) -> KafkaSettings:
    settings = KafkaSettings.from_env()
    if args.topic_prefix is not None:
        settings = KafkaSettings(settings.bootstrap_servers, settings.schema_registry_url, args.topic_prefix)
    return settings


def metrics_port(args: argparse.Namespace) -> int | None:
    if args.metrics_port is not None:
        return int(args.metrics_port)
    port = env_int(os.environ, "KRACKED_METRICS_PORT", 0)
    return port or None


def service_main(
    argv: Sequence[str],
    parser: argparse.ArgumentParser,
    build: Callable[[argparse.Namespace, KafkaSettings], tuple[Any, Any]],
) -> int:
    """Parse, validate, build and run a consumer service; bad configuration is a ConfigError."""
    from consumers.runtime import Runtime  # the plumbing stays importable without the consumers
    from kracked import metrics
    from kracked.kafka import check_broker

    args = parser.parse_args(list(argv))
    setup_logging(args.log_level)
    settings = kafka_settings(args)
    service, options = build(args, settings)
    if args.stop_when_idle is not None:
        options.stop_when_idle_s = args.stop_when_idle
    check_broker(settings)
    metrics.serve(metrics_port(args))
    runtime = Runtime(service, settings, options)
    runtime.install_signal_handlers()
    return runtime.run()


def positive(name: str, value: int) -> int:
    if value <= 0:
        raise ConfigError(f"{name} must be positive, got {value}")
    return value
