"""Settings of `kracked dashboard`: one frozen class from `KRACKED_DASHBOARD_*` variables, flags override.

The page binds 127.0.0.1 unless told otherwise (compose passes `--host 0.0.0.0` inside its container
and publishes the port on 127.0.0.1 of the host). Every problem is a one-line `ConfigError`.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from consumers.dashboard.domain import Limits
from kracked.errors import ConfigError
from kracked.settings import env_int, env_str

# Every KRACKED_* variable read here is documented in kracked.settings.DOCUMENTED (a test checks it).


def _positive_float(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if not value > 0:
        raise ConfigError(f"{name} must be > 0, got {raw}")
    return value


@dataclass(frozen=True)
class DashboardSettings:
    """Where the page is served, how far back to read, how often to push, what to keep."""

    host: str = "127.0.0.1"
    port: int = 8050
    window_minutes: int = 60
    max_push_hz: float = 10.0
    bars_per_interval: int = 500
    tail_records: int = 1000  # at least this many records per partition are read, however old
    trades: bool = True  # read kraken.trade for the last trade (else the bars' close)
    lag_interval_s: float = 1.0
    metadata_interval_s: float = 5.0  # how often new topics/partitions are looked for

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> DashboardSettings:
        env = os.environ if env is None else env
        values: dict[str, Any] = {
            "host": env_str(env, "KRACKED_DASHBOARD_HOST", "127.0.0.1"),
            "port": env_int(env, "KRACKED_DASHBOARD_PORT", 8050),
            "window_minutes": env_int(env, "KRACKED_DASHBOARD_WINDOW_MINUTES", 60),
            "bars_per_interval": env_int(env, "KRACKED_DASHBOARD_BARS", 500),
        }
        raw_hz = env_str(env, "KRACKED_DASHBOARD_MAX_PUSH_HZ")
        if raw_hz:
            values["max_push_hz"] = _positive_float("KRACKED_DASHBOARD_MAX_PUSH_HZ", raw_hz)
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)
        settings.validate()
        return settings

    @classmethod
    def from_args(cls, args: argparse.Namespace, env: Mapping[str, str] | None = None) -> DashboardSettings:
        return cls.from_env(
            env,
            host=args.host,
            port=args.port,
            window_minutes=args.window_minutes,
            max_push_hz=args.max_push_hz,
            bars_per_interval=args.bars,
            trades=False if args.no_trades else None,
        )

    def with_(self, **changes: Any) -> DashboardSettings:
        settings = replace(self, **changes)
        settings.validate()
        return settings

    def validate(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"dashboard port {self.port} is not a TCP port")
        if self.window_minutes < 0:
            raise ConfigError("dashboard window must be >= 0 minutes (0 = from the beginning)")
        if not self.max_push_hz > 0:
            raise ConfigError("dashboard max pushes per second must be > 0")
        if self.bars_per_interval < 1:
            raise ConfigError("dashboard bars per interval must be >= 1")
        if not self.host:
            raise ConfigError("dashboard host is empty")

    def limits(self) -> Limits:
        return Limits(bars_per_interval=self.bars_per_interval)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=None, help="KRACKED_DASHBOARD_HOST (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="KRACKED_DASHBOARD_PORT (default 8050)")
    parser.add_argument(
        "--window-minutes", type=int, default=None, help="KRACKED_DASHBOARD_WINDOW_MINUTES (default 60)"
    )
    parser.add_argument(
        "--max-push-hz", type=float, default=None, help="KRACKED_DASHBOARD_MAX_PUSH_HZ (default 10)"
    )
    parser.add_argument("--bars", type=int, default=None, help="KRACKED_DASHBOARD_BARS (default 500)")
    parser.add_argument("--no-trades", action="store_true", help="do not read kraken.trade")
