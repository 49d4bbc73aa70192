"""connector.settings: environment + flags, validated once, secrets hidden."""

from __future__ import annotations

import pytest

from connector.settings import DEFAULT_SYMBOLS, ConnectorSettings
from kracked.errors import ConfigError

SECRET = "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg=="
BASE = {"KRACKED_BOOTSTRAP_SERVERS": "127.0.0.1:9092", "KRACKED_SCHEMA_REGISTRY_URL": "http://127.0.0.1:8081"}


def _settings(argv: list[str] | None = None, /, **env: str) -> ConnectorSettings:
    return ConnectorSettings.from_env({**BASE, **env}, argv or [])


def test_defaults() -> None:
    s = _settings()
    assert s.symbols == DEFAULT_SYMBOLS
    assert s.channels == ("ticker", "book", "trade", "ohlc", "instrument", "status")
    assert (s.book_depth, s.level3_depth, s.ohlc_intervals, s.event_triggers) == (10, 10, (1,), ("trades",))
    assert s.ws_url == "wss://ws.kraken.com/v2" and s.rest_url == "https://api.kraken.com"
    assert s.credentials is None and s.metrics_port is None and s.trade_snapshot
    assert s.needs_reference


def test_environment_is_read_and_flags_override() -> None:
    env = {
        "KRACKED_SYMBOLS": "BTC/USD, SOL/USD",
        "KRACKED_CHANNELS": "book,trade",
        "KRACKED_BOOK_DEPTH": "100",
        "KRACKED_OHLC_INTERVALS": "1,5,21600",
        "KRACKED_TICKER_EVENT_TRIGGER": "trades,bbo",
        "KRACKED_KRAKEN_WS_URL": "ws://127.0.0.1:1/v2",
        "KRACKED_METRICS_PORT": "9100",
        "KRACKED_TOPIC_PREFIX": "t.",
    }
    s = _settings(**env)
    assert s.symbols == ("BTC/USD", "SOL/USD") and s.channels == ("book", "trade")
    assert (s.book_depth, s.ohlc_intervals, s.event_triggers) == (100, (1, 5, 21600), ("trades", "bbo"))
    assert s.ws_url == "ws://127.0.0.1:1/v2" and s.metrics_port == 9100 and s.kafka.topic_prefix == "t."
    s = _settings(
        ["--symbols", "all", "--book-depth", "1000", "--metrics-port", "0", "--no-trade-snapshot"], **env
    )
    assert s.symbols is None and s.book_depth == 1000 and s.metrics_port == 0 and not s.trade_snapshot


def test_credentials_enable_private_channels_and_stay_hidden() -> None:
    s = _settings(KRACKED_KRAKEN_API_KEY="the-key", KRACKED_KRAKEN_API_SECRET=SECRET)
    assert s.channels[-2:] == ("executions", "balances")
    assert s.credentials is not None and s.credentials.key == "the-key"
    assert "the-key" not in repr(s) and SECRET not in repr(s)
    s = _settings(KRACKED_KRAKEN_API_KEY="k", KRACKED_KRAKEN_API_SECRET=SECRET, KRACKED_CHANNELS="level3")
    assert s.channels == ("level3",)


@pytest.mark.parametrize(
    ("env", "argv", "message"),
    [
        ({"KRACKED_CHANNELS": "book,candles"}, [], "unknown channel(s) candles"),
        ({"KRACKED_CHANNELS": "executions"}, [], "need KRACKED_KRAKEN_API_KEY"),
        ({"KRACKED_BOOK_DEPTH": "20"}, [], "KRACKED_BOOK_DEPTH=20 must be one of 10, 25, 100, 500, 1000"),
        ({}, ["--level3-depth", "25"], "KRACKED_LEVEL3_DEPTH=25"),
        ({"KRACKED_BOOK_DEPTH": "ten"}, [], "is not an integer"),
        ({"KRACKED_OHLC_INTERVALS": "2"}, [], "KRACKED_OHLC_INTERVALS"),
        ({"KRACKED_TICKER_EVENT_TRIGGER": "always"}, [], "trades, bbo"),
        ({"KRACKED_SYMBOLS": "BTCUSD"}, [], "is not BASE/QUOTE"),
        ({"KRACKED_KRAKEN_WS_URL": "http://x"}, [], "KRACKED_KRAKEN_WS_URL"),
        ({"KRACKED_KRAKEN_REST_URL": "ftp://x"}, [], "KRACKED_KRAKEN_REST_URL"),
        ({"KRACKED_WATCHDOG_SECONDS": "0"}, [], "must be > 0"),
        ({"KRACKED_KRAKEN_API_KEY": "k"}, [], "set both"),
        ({"KRACKED_KRAKEN_API_KEY": "k", "KRACKED_KRAKEN_API_SECRET": "%%%"}, [], "not valid base64"),
        ({}, ["--metrics-port", "70000"], "not a TCP port"),
    ],
)
def test_bad_configuration_is_one_clear_line(env: dict[str, str], argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        _settings(argv, **env)
    assert message in str(info.value)
    assert "\n" not in str(info.value)
    assert "%%%" not in str(info.value)


def test_missing_broker_is_a_config_error(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.setenv("KRACKED_HOME", str(tmp_path))
    with pytest.raises(ConfigError, match="KRACKED_BOOTSTRAP_SERVERS"):
        ConnectorSettings.from_env({"KRACKED_HOME": str(tmp_path)}, [])
