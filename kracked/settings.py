"""Settings shared by every command, read from `KRACKED_*` environment variables (flags override).

Every variable a user can set is listed in `DOCUMENTED` (the README, `.env.example` and a test that
checks docker-compose.yml rely on it). When `KRACKED_BOOTSTRAP_SERVERS` is not set, the values written
by `kracked stack up` to `.kracked/stack.env` are used, so commands work right after starting the stack.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from kracked.errors import ConfigError

DOCUMENTED: dict[str, str] = {
    "KRACKED_BOOTSTRAP_SERVERS": "Kafka bootstrap servers (host:port,...); unset = the local stack's",
    "KRACKED_SCHEMA_REGISTRY_URL": "Confluent-compatible schema registry URL (Apicurio: .../apis/ccompat/v7)",
    "KRACKED_TOPIC_PREFIX": "prefix for every topic name (default empty; e.g. backtest.)",
    "KRACKED_KRAKEN_WS_URL": "Kraken public WebSocket v2 (default wss://ws.kraken.com/v2)",
    "KRACKED_KRAKEN_WS_AUTH_URL": "Kraken authenticated WebSocket v2 (default wss://ws-auth.kraken.com/v2)",
    "KRACKED_KRAKEN_WS_L3_URL": "Kraken level3 WebSocket v2 (default wss://ws-l3.kraken.com/v2)",
    "KRACKED_KRAKEN_REST_URL": "Kraken REST API (default https://api.kraken.com)",
    "KRACKED_KRAKEN_API_KEY": "Kraken API key (secret: never logged)",
    "KRACKED_KRAKEN_API_SECRET": "Kraken API secret, base64 (secret: never logged)",
    "KRACKED_SYMBOLS": "symbols, comma separated (e.g. BTC/USD,ETH/USD) or 'all'",
    "KRACKED_CHANNELS": "channels, comma separated (ticker,book,trade,ohlc,instrument,status,level3,executions,balances)",
    "KRACKED_BOOK_DEPTH": "book depth to subscribe (10, 25, 100, 500, 1000)",
    "KRACKED_LEVEL3_DEPTH": "level3 depth to subscribe (10, 100, 1000; default 10)",
    "KRACKED_OHLC_INTERVALS": "ohlc intervals in minutes, comma separated (1,5,15,30,60,240,1440,10080,21600; default 1)",
    "KRACKED_TICKER_EVENT_TRIGGER": "ticker event_trigger: trades, bbo, or trades,bbo for both (default trades)",
    "KRACKED_WATCHDOG_SECONDS": "reconnect when a connection sends no frame for this long (default 15)",
    "KRACKED_SYMBOLS_PER_CONNECTION": "symbols per WebSocket connection (default 50; level3 at most 200)",
    "KRACKED_PARQUET_DIR": "root folder of the Parquet dataset",
    "KRACKED_ORDERS_MODE": "orders: dry-run (default), validate or live (live also needs --live)",
    "KRACKED_ORDERS_ALLOWED_SYMBOLS": "orders: symbols that may be traded (default KRACKED_SYMBOLS; required for live)",
    "KRACKED_ORDERS_MAX_NOTIONAL": "orders: max quantity x price per order, e.g. 1000 or BTC/USD=1000,*=100 (required for live)",
    "KRACKED_ORDERS_MAX_POSITION": "orders: max net position per symbol in base units, e.g. 0.5 or BTC/USD=0.5,*=10",
    "KRACKED_ORDERS_MAX_PER_MINUTE": "orders: max orders per rolling minute (default unlimited)",
    "KRACKED_ORDERS_MAX_SIGNAL_AGE_S": "orders: reject signals older than this many seconds (default no limit)",
    "KRACKED_ORDERS_RETRIES": "orders: AddOrder retries after a network error or timeout (default 2)",
    "KRACKED_ORDERS_TIMEOUT_S": "orders: HTTP timeout of one Kraken REST request in seconds (default 10)",
    "KRACKED_ORDERS_BACKOFF_S": "orders: first retry backoff in seconds, doubled per retry (default 0.5)",
    "KRACKED_ORDERS_DEADLINE_S": "orders: Kraken AddOrder deadline in seconds, 0.5-60, 0 = none (default 5)",
    "KRACKED_ORDERS_CLIENT_ID": "orders: cl_ord_id (default) or userref: how orders are tagged with the signal id",
    "KRACKED_ORDERS_CANCEL_AFTER_S": "orders: dead man's switch CancelAllOrdersAfter timeout while live (0 = off)",
    "KRACKED_DASHBOARD_HOST": "dashboard: address the web page binds (default 127.0.0.1)",
    "KRACKED_DASHBOARD_PORT": "dashboard: port of the web page (default 8050; 0 = any free port)",
    "KRACKED_DASHBOARD_WINDOW_MINUTES": "dashboard: how far back to read the topics at start, in minutes (default 60; 0 = from the beginning); kracked.orders is always read from the beginning",
    "KRACKED_DASHBOARD_MAX_PUSH_HZ": "dashboard: most updates per second pushed to the page per symbol (default 10)",
    "KRACKED_DASHBOARD_BARS": "dashboard: bars kept per symbol and interval (default 500)",
    "KRACKED_LOG_LEVEL": "log level (DEBUG, INFO, WARNING)",
    "KRACKED_METRICS_PORT": "Prometheus metrics port (unset = no metrics server)",
    "KRACKED_METRICS_HOST": "address the metrics server binds (default 127.0.0.1; 0.0.0.0 in containers)",
    "KRACKED_HOME": "state folder of the local stack (default .kracked)",
    "KRACKED_CACHE_DIR": "cache of the Kafka and registry jars (default ~/.cache/kracked)",
    "KRACKED_JAVA": "java binary for the local stack (default: JAVA_HOME, PATH, /usr/lib/jvm)",
}


def stack_env_file() -> Path:
    return Path(os.environ.get("KRACKED_HOME") or ".kracked").absolute() / "stack.env"


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines (comments and blanks ignored)."""
    values: dict[str, str] = {}
    if not path.exists():
        return values
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip()
    return values


def env_str(env: Mapping[str, str], name: str, default: str = "") -> str:
    return env.get(name, default).strip() or default


def env_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None


def env_list(env: Mapping[str, str], name: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    return tuple(part.strip() for part in raw.split(",") if part.strip())


@dataclass(frozen=True)
class KafkaSettings:
    """Where Kafka and the registry are, and the topic prefix."""

    bootstrap_servers: str
    schema_registry_url: str
    topic_prefix: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> KafkaSettings:
        env = os.environ if env is None else env
        bootstrap = env_str(env, "KRACKED_BOOTSTRAP_SERVERS")
        registry = env_str(env, "KRACKED_SCHEMA_REGISTRY_URL")
        if not bootstrap or not registry:
            stack = read_env_file(stack_env_file())
            bootstrap = bootstrap or stack.get("KRACKED_BOOTSTRAP_SERVERS", "")
            registry = registry or stack.get("KRACKED_SCHEMA_REGISTRY_URL", "")
        if not bootstrap:
            raise ConfigError(
                "KRACKED_BOOTSTRAP_SERVERS is not set and no local stack runs: run `kracked stack up` or set it"
            )
        if not registry:
            raise ConfigError(
                "KRACKED_SCHEMA_REGISTRY_URL is not set and no local stack runs: run `kracked stack up` or set it"
            )
        if not registry.startswith(("http://", "https://")):
            raise ConfigError(f"KRACKED_SCHEMA_REGISTRY_URL={registry!r} must start with http:// or https://")
        return cls(bootstrap, registry.rstrip("/"), env_str(env, "KRACKED_TOPIC_PREFIX"))
