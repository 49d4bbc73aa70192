"""Settings of `kracked orders`: one frozen class from `KRACKED_*` variables, flags override.

Dry-run is the default. `validate` and `live` need the API key and secret; `live` also needs the
explicit `--live` flag (an environment variable alone never enables trading), an allow-list of symbols
and a max notional per order. Every problem is a one-line `ConfigError`; the key and secret are never
part of a message, a repr or a log line.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from consumers.orders.domain import ClientIdField, Mode, RiskLimits, SymbolLimits
from kracked.errors import ConfigError

DEFAULT_REST_URL = "https://api.kraken.com"

# Every KRACKED_* variable read here is documented in kracked.settings.DOCUMENTED (a test checks it).


def _env(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return None
    return raw.strip()


def _int(name: str, raw: str | None, default: int | None) -> int | None:
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None


def _float(name: str, raw: str | None, default: float | None) -> float | None:
    if raw is None:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None


def _limits(name: str, raw: str | None) -> SymbolLimits:
    try:
        return SymbolLimits.parse(raw)
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc}") from None


def _symbols(raw: str | None) -> frozenset[str] | None:
    if raw is None or raw.lower() == "all":
        return None
    symbols = frozenset(s.strip() for s in raw.split(",") if s.strip())
    return symbols or None


@dataclass(frozen=True)
class OrdersSettings:
    """Everything `kracked orders` needs besides Kafka (secrets are excluded from repr)."""

    mode: Mode = Mode.DRY_RUN
    rest_url: str = DEFAULT_REST_URL
    api_key: str | None = field(default=None, repr=False)
    api_secret: str | None = field(default=None, repr=False)
    allowed_symbols: frozenset[str] | None = None
    max_notional: SymbolLimits = field(default_factory=SymbolLimits)
    max_position: SymbolLimits = field(default_factory=SymbolLimits)
    max_orders_per_minute: int | None = None
    max_signal_age_s: float | None = None
    max_attempts: int = 3
    timeout_s: float = 10.0
    backoff_s: float = 0.5
    deadline_s: float | None = 5.0
    client_id_field: ClientIdField = ClientIdField.CL_ORD_ID
    cancel_after_s: int = 0
    rate_limit: bool = True  # ccxt's own request pacing (off in tests against the local fake)

    # ---- construction ----------------------------------------------------------------------
    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        mode: str | None = None,
        live: bool = False,
        **overrides: Any,
    ) -> OrdersSettings:
        """Read `KRACKED_*`; `mode`/`live` are the flags; `overrides` replace fields (flags, tests)."""
        env = os.environ if env is None else env
        retries = _int("KRACKED_ORDERS_RETRIES", _env(env, "KRACKED_ORDERS_RETRIES"), 2)
        deadline = _float("KRACKED_ORDERS_DEADLINE_S", _env(env, "KRACKED_ORDERS_DEADLINE_S"), 5.0)
        client_id = _env(env, "KRACKED_ORDERS_CLIENT_ID") or ClientIdField.CL_ORD_ID.value
        if client_id not in {f.value for f in ClientIdField}:
            raise ConfigError(f"KRACKED_ORDERS_CLIENT_ID={client_id!r} must be cl_ord_id or userref")
        values: dict[str, Any] = {
            "mode": cls._mode(mode or _env(env, "KRACKED_ORDERS_MODE"), live),
            "rest_url": (_env(env, "KRACKED_KRAKEN_REST_URL") or DEFAULT_REST_URL).rstrip("/"),
            "api_key": _env(env, "KRACKED_KRAKEN_API_KEY"),
            "api_secret": _env(env, "KRACKED_KRAKEN_API_SECRET"),
            "allowed_symbols": _symbols(
                _env(env, "KRACKED_ORDERS_ALLOWED_SYMBOLS") or _env(env, "KRACKED_SYMBOLS")
            ),
            "max_notional": _limits("KRACKED_ORDERS_MAX_NOTIONAL", _env(env, "KRACKED_ORDERS_MAX_NOTIONAL")),
            "max_position": _limits("KRACKED_ORDERS_MAX_POSITION", _env(env, "KRACKED_ORDERS_MAX_POSITION")),
            "max_orders_per_minute": _int(
                "KRACKED_ORDERS_MAX_PER_MINUTE", _env(env, "KRACKED_ORDERS_MAX_PER_MINUTE"), None
            ),
            "max_signal_age_s": _float(
                "KRACKED_ORDERS_MAX_SIGNAL_AGE_S", _env(env, "KRACKED_ORDERS_MAX_SIGNAL_AGE_S"), None
            ),
            "max_attempts": 1 + (retries or 0),
            "timeout_s": _float("KRACKED_ORDERS_TIMEOUT_S", _env(env, "KRACKED_ORDERS_TIMEOUT_S"), 10.0),
            "backoff_s": _float("KRACKED_ORDERS_BACKOFF_S", _env(env, "KRACKED_ORDERS_BACKOFF_S"), 0.5),
            "deadline_s": deadline or None,
            "client_id_field": ClientIdField(client_id),
            "cancel_after_s": _int(
                "KRACKED_ORDERS_CANCEL_AFTER_S", _env(env, "KRACKED_ORDERS_CANCEL_AFTER_S"), 0
            ),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        values["deadline_s"] = values["deadline_s"] or None  # 0 = no deadline
        settings = cls(**values)
        settings.validate()
        return settings

    @staticmethod
    def _mode(raw: str | None, live: bool) -> Mode:
        try:
            mode = Mode(raw.lower()) if raw else None
        except ValueError:
            raise ConfigError(f"orders mode {raw!r} must be dry-run, validate or live") from None
        if live:
            if mode not in (None, Mode.LIVE):
                raise ConfigError(f"--live contradicts mode {mode}")
            return Mode.LIVE
        if mode is Mode.LIVE:
            raise ConfigError("mode live places real orders and needs the explicit --live flag")
        return mode or Mode.DRY_RUN

    @classmethod
    def from_args(cls, args: argparse.Namespace, env: Mapping[str, str] | None = None) -> OrdersSettings:
        """From the flags added by `add_arguments` (flags win over the environment)."""
        overrides: dict[str, Any] = {}
        if args.allowed_symbols is not None:
            overrides["allowed_symbols"] = _symbols(args.allowed_symbols)
        if args.max_notional is not None:
            overrides["max_notional"] = _limits("--max-notional", args.max_notional)
        if args.max_position is not None:
            overrides["max_position"] = _limits("--max-position", args.max_position)
        if args.retries is not None:
            overrides["max_attempts"] = 1 + args.retries
        for flag, name in (
            ("max_orders_per_minute", "max_orders_per_minute"),
            ("max_signal_age", "max_signal_age_s"),
            ("timeout", "timeout_s"),
            ("backoff", "backoff_s"),
            ("cancel_after", "cancel_after_s"),
        ):
            value = getattr(args, flag)
            if value is not None:
                overrides[name] = value
        if args.deadline is not None:
            overrides["deadline_s"] = args.deadline  # 0 = none
        if args.client_id is not None:
            overrides["client_id_field"] = ClientIdField(args.client_id)
        return cls.from_env(env, mode=args.mode, live=bool(args.live), **overrides)

    def with_(self, **changes: Any) -> OrdersSettings:
        """A validated copy with some fields changed."""
        settings = replace(self, **changes)
        settings.validate()
        return settings

    # ---- checks ------------------------------------------------------------------------------
    def validate(self) -> None:
        """ConfigError (one line, never quoting a secret) for an unusable combination."""
        if not self.rest_url.startswith(("http://", "https://")):
            raise ConfigError(
                f"KRACKED_KRAKEN_REST_URL={self.rest_url!r} must start with http:// or https://"
            )
        if self.mode is not Mode.DRY_RUN:
            if not self.api_key or not self.api_secret:
                raise ConfigError(
                    f"mode {self.mode} needs KRACKED_KRAKEN_API_KEY and KRACKED_KRAKEN_API_SECRET"
                )
            try:
                base64.b64decode(self.api_secret, validate=True)
            except (binascii.Error, ValueError):
                raise ConfigError("KRACKED_KRAKEN_API_SECRET is not valid base64") from None
        if self.mode is Mode.LIVE:
            if not self.allowed_symbols:
                raise ConfigError("mode live needs KRACKED_ORDERS_ALLOWED_SYMBOLS (or --allowed-symbols)")
            if not self.max_notional.configured:
                raise ConfigError("mode live needs KRACKED_ORDERS_MAX_NOTIONAL (or --max-notional)")
        if self.max_attempts < 1:
            raise ConfigError("retries must be >= 0")
        if self.timeout_s <= 0:
            raise ConfigError("timeout must be > 0 seconds")
        if self.backoff_s < 0:
            raise ConfigError("backoff must be >= 0 seconds")
        if self.deadline_s is not None and not 0.5 <= self.deadline_s <= 60:
            # Kraken: deadline must be 500 ms to 60 s ahead of the request.
            raise ConfigError(f"deadline {self.deadline_s} s must be between 0.5 and 60 (0 = none)")
        if self.max_orders_per_minute is not None and self.max_orders_per_minute < 1:
            raise ConfigError("max orders per minute must be >= 1")
        if self.max_signal_age_s is not None and self.max_signal_age_s <= 0:
            raise ConfigError("max signal age must be > 0 seconds")
        if not 0 <= self.cancel_after_s < 86400:
            # Kraken CancelAllOrdersAfter: timeout in seconds, < 86400; 0 disables.
            raise ConfigError("cancel-after must be between 0 and 86399 seconds")

    # ---- derived -----------------------------------------------------------------------------
    def risk_limits(self) -> RiskLimits:
        return RiskLimits(
            allowed_symbols=self.allowed_symbols,
            max_notional=self.max_notional,
            max_position=self.max_position,
            max_orders_per_minute=self.max_orders_per_minute,
            max_signal_age_us=None if self.max_signal_age_s is None else int(self.max_signal_age_s * 1e6),
        )

    def describe(self) -> str:
        """One line for the start-up log (no secrets)."""
        symbols = ",".join(sorted(self.allowed_symbols)) if self.allowed_symbols else "all"
        return (
            f"mode={self.mode} rest={self.rest_url} symbols={symbols} "
            f"max_notional={self.max_notional.describe()} max_position={self.max_position.describe()} "
            f"max_per_minute={self.max_orders_per_minute or 'none'} attempts={self.max_attempts} "
            f"timeout={self.timeout_s:g}s deadline={self.deadline_s or 'none'} "
            f"client_id={self.client_id_field} cancel_after={self.cancel_after_s or 'off'} "
            f"key={'set' if self.api_key else 'unset'}"
        )

    def banner(self) -> list[str]:
        """Lines to log at start: at WARNING, and loud, when live."""
        if self.mode is Mode.LIVE:
            return [
                "!" * 78,
                "!!! LIVE TRADING: signals from kracked.signals become REAL ORDERS on Kraken",
                f"!!! {self.describe()}",
                "!" * 78,
            ]
        if self.mode is Mode.VALIDATE:
            return [
                f"validate mode: orders are sent with validate=true, nothing is placed; {self.describe()}"
            ]
        return [f"dry-run mode: signals are checked, nothing is sent to Kraken; {self.describe()}"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `kracked orders` flags (each overrides its KRACKED_ORDERS_* variable)."""
    parser.add_argument("--mode", choices=[m.value for m in Mode], default=None, help="KRACKED_ORDERS_MODE")
    parser.add_argument(
        "--live", action="store_true", help="really place orders on Kraken (required for mode live)"
    )
    parser.add_argument("--allowed-symbols", default=None, help="KRACKED_ORDERS_ALLOWED_SYMBOLS")
    parser.add_argument("--max-notional", default=None, help="KRACKED_ORDERS_MAX_NOTIONAL")
    parser.add_argument("--max-position", default=None, help="KRACKED_ORDERS_MAX_POSITION")
    parser.add_argument(
        "--max-orders-per-minute", type=int, default=None, help="KRACKED_ORDERS_MAX_PER_MINUTE"
    )
    parser.add_argument("--max-signal-age", type=float, default=None, help="KRACKED_ORDERS_MAX_SIGNAL_AGE_S")
    parser.add_argument("--retries", type=int, default=None, help="KRACKED_ORDERS_RETRIES")
    parser.add_argument("--timeout", type=float, default=None, help="KRACKED_ORDERS_TIMEOUT_S")
    parser.add_argument("--backoff", type=float, default=None, help="KRACKED_ORDERS_BACKOFF_S")
    parser.add_argument("--deadline", type=float, default=None, help="KRACKED_ORDERS_DEADLINE_S")
    parser.add_argument(
        "--client-id", choices=[f.value for f in ClientIdField], default=None, help="KRACKED_ORDERS_CLIENT_ID"
    )
    parser.add_argument("--cancel-after", type=int, default=None, help="KRACKED_ORDERS_CANCEL_AFTER_S")
