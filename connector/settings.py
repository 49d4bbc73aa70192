"""Settings of `kracked connector`: `KRACKED_*` environment variables, overridden by command-line flags.

Everything is validated here, once, so a bad value stops the process with a one-line `ConfigError`
(exit 2) before anything connects. API key and secret come only from the environment (a flag would
show them in `ps`); they are held in `Credentials`, whose repr hides them.

Defaults: symbols `BTC/USD,ETH/USD`; channels = every public channel, plus executions and balances
when a key and secret are set (level3 only when asked for, it needs a key with level3 access);
book depth 10, level3 depth 10, ohlc interval 1, ticker `event_trigger` trades.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from connector.kraken.auth import Credentials
from connector.kraken.client import (
    ALL_CHANNELS,
    AUTH_CHANNELS,
    BOOK_DEPTHS,
    EVENT_TRIGGERS,
    L3_DEPTHS,
    OHLC_INTERVALS,
    PUBLIC_CHANNELS,
)
from kracked.errors import ConfigError
from kracked.settings import KafkaSettings, env_int, env_str

DEFAULT_SYMBOLS = ("BTC/USD", "ETH/USD")

# Every KRACKED_* variable read here is documented in kracked.settings.DOCUMENTED (a test checks it).


@dataclass(frozen=True)
class ConnectorSettings:
    kafka: KafkaSettings
    ws_url: str = "wss://ws.kraken.com/v2"
    ws_auth_url: str = "wss://ws-auth.kraken.com/v2"
    ws_l3_url: str = "wss://ws-l3.kraken.com/v2"
    rest_url: str = "https://api.kraken.com"
    credentials: Credentials | None = field(default=None, repr=False)
    symbols: tuple[str, ...] | None = DEFAULT_SYMBOLS  # None = every online pair ("all")
    channels: tuple[str, ...] = PUBLIC_CHANNELS
    book_depth: int = 10
    level3_depth: int = 10
    ohlc_intervals: tuple[int, ...] = (1,)
    event_triggers: tuple[str, ...] = ("trades",)
    trade_snapshot: bool = True
    watchdog_seconds: float = 15.0
    ping_seconds: float = 15.0
    symbols_per_connection: int = 50
    max_connects: int = 120  # per connect_window seconds (Kraken: ~150 per 10 minutes, reference §7.1)
    connect_window: float = 600.0
    backoff_base: float = 0.5
    backoff_cap: float = 60.0
    stable_seconds: float = 30.0
    instrument_timeout: float = 30.0
    flush_timeout: float = 30.0
    metrics_port: int | None = None
    log_level: str | None = None
    source: str = "connector"
    partitions: int = 1  # for topics the connector creates when missing

    @property
    def publish_channels(self) -> frozenset[str]:
        return frozenset(self.channels)

    @property
    def needs_reference(self) -> bool:
        """Instrument data is needed for checksums (book/level3), for `all`, or when asked for."""
        return self.symbols is None or bool({"book", "level3", "instrument"} & set(self.channels))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, argv: Sequence[str] = ()) -> ConnectorSettings:
        env = os.environ if env is None else env
        args = _parser().parse_args(list(argv))
        kafka = KafkaSettings.from_env(env)

        def pick(flag: object, name: str, default: str = "") -> str:
            return str(flag) if flag is not None else env_str(env, name, default)

        key = env_str(env, "KRACKED_KRAKEN_API_KEY")
        secret = env_str(env, "KRACKED_KRAKEN_API_SECRET")
        if bool(key) != bool(secret):
            raise ConfigError("set both KRACKED_KRAKEN_API_KEY and KRACKED_KRAKEN_API_SECRET, or neither")
        credentials = None
        if key:
            try:
                credentials = Credentials(key, secret)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None

        symbols_text = pick(args.symbols, "KRACKED_SYMBOLS")
        symbols = _symbols(symbols_text)

        channels_text = pick(args.channels, "KRACKED_CHANNELS")
        if channels_text:
            channels = _words(channels_text)
        else:
            channels = PUBLIC_CHANNELS + (AUTH_CHANNELS if credentials else ())
        unknown = [c for c in channels if c not in ALL_CHANNELS]
        if unknown:
            raise ConfigError(f"unknown channel(s) {', '.join(unknown)} (known: {', '.join(ALL_CHANNELS)})")
        private = [c for c in channels if c in AUTH_CHANNELS or c == "level3"]
        if private and credentials is None:
            raise ConfigError(
                f"channel(s) {', '.join(private)} need KRACKED_KRAKEN_API_KEY and KRACKED_KRAKEN_API_SECRET"
            )

        book_depth = _int_choice(args.book_depth, env, "KRACKED_BOOK_DEPTH", 10, BOOK_DEPTHS)
        level3_depth = _int_choice(args.level3_depth, env, "KRACKED_LEVEL3_DEPTH", 10, L3_DEPTHS)
        intervals_text = pick(args.ohlc_intervals, "KRACKED_OHLC_INTERVALS", "1")
        intervals = tuple(_int(v, "KRACKED_OHLC_INTERVALS") for v in _words(intervals_text))
        bad = [i for i in intervals if i not in OHLC_INTERVALS]
        if bad or not intervals:
            raise ConfigError(
                f"KRACKED_OHLC_INTERVALS={intervals_text!r}: each must be one of {', '.join(map(str, OHLC_INTERVALS))}"
            )
        triggers_text = pick(args.ticker_event_trigger, "KRACKED_TICKER_EVENT_TRIGGER", "trades")
        triggers = _words(triggers_text)
        if not triggers or any(t not in EVENT_TRIGGERS for t in triggers):
            raise ConfigError(
                f"KRACKED_TICKER_EVENT_TRIGGER={triggers_text!r}: use trades, bbo or trades,bbo"
            )

        watchdog = _float(
            pick(args.watchdog_seconds, "KRACKED_WATCHDOG_SECONDS", "15"), "KRACKED_WATCHDOG_SECONDS"
        )
        if watchdog <= 0:
            raise ConfigError("KRACKED_WATCHDOG_SECONDS must be > 0")
        per_conn = (
            args.symbols_per_connection
            if args.symbols_per_connection is not None
            else env_int(env, "KRACKED_SYMBOLS_PER_CONNECTION", 50)
        )
        if per_conn < 1:
            raise ConfigError("KRACKED_SYMBOLS_PER_CONNECTION must be >= 1")
        metrics_port = args.metrics_port
        if metrics_port is None and env_str(env, "KRACKED_METRICS_PORT"):
            metrics_port = env_int(env, "KRACKED_METRICS_PORT", 0)
        if metrics_port is not None and not 0 <= metrics_port <= 65535:
            raise ConfigError(f"metrics port {metrics_port} is not a TCP port")

        urls = {
            "ws_url": pick(args.ws_url, "KRACKED_KRAKEN_WS_URL", cls.ws_url),
            "ws_auth_url": pick(args.ws_auth_url, "KRACKED_KRAKEN_WS_AUTH_URL", cls.ws_auth_url),
            "ws_l3_url": pick(args.ws_l3_url, "KRACKED_KRAKEN_WS_L3_URL", cls.ws_l3_url),
        }
        for name, url in urls.items():
            if not url.startswith(("ws://", "wss://")):
                var = {"ws_url": "WS_URL", "ws_auth_url": "WS_AUTH_URL", "ws_l3_url": "WS_L3_URL"}[name]
                raise ConfigError(f"KRACKED_KRAKEN_{var}={url!r} must start with ws:// or wss://")
        rest_url = pick(args.rest_url, "KRACKED_KRAKEN_REST_URL", cls.rest_url)
        if not rest_url.startswith(("http://", "https://")):
            raise ConfigError(f"KRACKED_KRAKEN_REST_URL={rest_url!r} must start with http:// or https://")

        return cls(
            kafka=kafka,
            rest_url=rest_url.rstrip("/"),
            credentials=credentials,
            symbols=symbols,
            channels=channels,
            book_depth=book_depth,
            level3_depth=level3_depth,
            ohlc_intervals=intervals,
            event_triggers=triggers,
            trade_snapshot=not args.no_trade_snapshot,
            watchdog_seconds=watchdog,
            symbols_per_connection=per_conn,
            metrics_port=metrics_port,
            log_level=args.log_level,
            ws_url=urls["ws_url"],
            ws_auth_url=urls["ws_auth_url"],
            ws_l3_url=urls["ws_l3_url"],
        )


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="kracked connector",
        description="Kraken WebSocket v2 -> Kafka. Flags override the KRACKED_* environment variables.",
    )
    p.add_argument("--symbols", help="BTC/USD,ETH/USD or 'all' (KRACKED_SYMBOLS)")
    p.add_argument("--channels", help=f"comma separated from {','.join(ALL_CHANNELS)} (KRACKED_CHANNELS)")
    p.add_argument("--book-depth", type=int, help="10, 25, 100, 500 or 1000 (KRACKED_BOOK_DEPTH)")
    p.add_argument("--level3-depth", type=int, help="10, 100 or 1000 (KRACKED_LEVEL3_DEPTH)")
    p.add_argument("--ohlc-intervals", help="minutes, e.g. 1,5,60 (KRACKED_OHLC_INTERVALS)")
    p.add_argument("--ticker-event-trigger", help="trades, bbo or trades,bbo (KRACKED_TICKER_EVENT_TRIGGER)")
    p.add_argument("--watchdog-seconds", type=float, help="reconnect after this long without a frame")
    p.add_argument("--symbols-per-connection", type=int, help="symbols per WebSocket (default 50)")
    p.add_argument(
        "--no-trade-snapshot", action="store_true", help="do not ask for the last 50 trades on (re)subscribe"
    )
    p.add_argument("--ws-url", help="public WebSocket URL (KRACKED_KRAKEN_WS_URL)")
    p.add_argument("--ws-auth-url", help="authenticated WebSocket URL (KRACKED_KRAKEN_WS_AUTH_URL)")
    p.add_argument("--ws-l3-url", help="level3 WebSocket URL (KRACKED_KRAKEN_WS_L3_URL)")
    p.add_argument("--rest-url", help="REST URL for the WebSocket token (KRACKED_KRAKEN_REST_URL)")
    p.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on 127.0.0.1:PORT")
    p.add_argument("--log-level", help="DEBUG, INFO, WARNING (KRACKED_LOG_LEVEL)")
    return p


def _words(text: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(w.strip() for w in text.split(",") if w.strip()))


def _symbols(text: str) -> tuple[str, ...] | None:
    if not text:
        return DEFAULT_SYMBOLS
    if text.strip().lower() == "all":
        return None
    symbols = _words(text)
    for sym in symbols:
        base, slash, quote = sym.partition("/")
        if not slash or not base or not quote or "/" in quote:
            raise ConfigError(f"symbol {sym!r} is not BASE/QUOTE (e.g. BTC/USD; Kraken v2 uses BTC, not XBT)")
    return symbols


def _int(text: str, name: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"{name}: {text!r} is not an integer") from None


def _float(text: str, name: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"{name}={text!r} is not a number") from None


def _int_choice(
    flag: int | None, env: Mapping[str, str], name: str, default: int, choices: Sequence[int]
) -> int:
    value = flag if flag is not None else env_int(env, name, default)
    if value not in choices:
        raise ConfigError(f"{name}={value} must be one of {', '.join(map(str, choices))}")
    return value
