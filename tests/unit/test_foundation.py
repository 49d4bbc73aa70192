"""Foundation units: settings, topic catalog, checksum helpers, CLI dispatch, schema checks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kracked.cli import main as cli_main
from kracked.errors import ConfigError
from kracked.settings import KafkaSettings, env_int
from kracked.stack import jars
from schemas.checksum import fixed_to_text, l2_checksum, to_fixed
from schemas.registry import explain, load_local
from schemas.topics import Topic, find_topic, schema_dir
from tests.conftest import KRAKEN_CAPTURES


def test_settings_from_env_and_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KRACKED_HOME", str(tmp_path))  # no stack.env there
    env = {"KRACKED_BOOTSTRAP_SERVERS": "127.0.0.1:9092", "KRACKED_SCHEMA_REGISTRY_URL": "http://r:8081/"}
    settings = KafkaSettings.from_env({**env, "KRACKED_TOPIC_PREFIX": "backtest."})
    assert settings == KafkaSettings("127.0.0.1:9092", "http://r:8081", "backtest.")
    with pytest.raises(ConfigError, match="KRACKED_BOOTSTRAP_SERVERS is not set"):
        KafkaSettings.from_env({})
    with pytest.raises(ConfigError, match="must start with http"):
        KafkaSettings.from_env({**env, "KRACKED_SCHEMA_REGISTRY_URL": "r:8081"})
    with pytest.raises(ConfigError, match="not an integer"):
        env_int({"KRACKED_BOOK_DEPTH": "ten"}, "KRACKED_BOOK_DEPTH", 10)


def test_settings_fall_back_to_stack_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "stack.env").write_text(
        "KRACKED_BOOTSTRAP_SERVERS=127.0.0.1:1234\nKRACKED_SCHEMA_REGISTRY_URL=http://127.0.0.1:5/apis/ccompat/v7\n"
    )
    monkeypatch.setenv("KRACKED_HOME", str(tmp_path))
    settings = KafkaSettings.from_env({})
    assert settings.bootstrap_servers == "127.0.0.1:1234"
    assert settings.schema_registry_url.endswith("/apis/ccompat/v7")


def test_topic_catalog_prefix_and_lookup() -> None:
    assert Topic.BOOK.name_with("backtest.") == "backtest.kraken.book"
    assert find_topic("backtest.kracked.book.top", "backtest.") is Topic.BOOK_TOP
    assert Topic.TRADE.channel == "trade" and Topic.BARS.channel is None
    with pytest.raises(ValueError, match="unknown topic"):
        find_topic("kraken.nope")
    assert {p.name for p in schema_dir().glob("*.avsc")} == {t.schema_file for t in Topic}


def test_fixed_point_helpers_are_exact() -> None:
    assert to_fixed("45281.0", 1) == 452810
    assert to_fixed("0.001", 8) == 100000  # float round-tripped capture values are re-scaled
    assert to_fixed("4.0", 8) == 400000000
    assert to_fixed("1873.30", 2) == 187330
    assert to_fixed("1e-5", 8) == 1000
    assert fixed_to_text(100000, 8) == "0.00100000"
    assert fixed_to_text(452810, 1) == "45281.0"
    with pytest.raises(ValueError):
        to_fixed("0.123", 2)
    with pytest.raises(ValueError):
        to_fixed("abc", 2)
    with pytest.raises(ValueError, match="not a decimal"):
        to_fixed("٣", 2)  # a digit to str.isdigit(), not to Kraken
    assert to_fixed(".", 2) == 0 == to_fixed("-.", 2)  # read as "0." (the native code agrees)


def test_official_l2_checksum_vector() -> None:
    doc = json.loads((KRAKEN_CAPTURES / "official_doc_examples.json").read_text())["l2_btcusd_doc_example"]
    text = json.dumps(doc)
    assert "3310070434" in text
    # the worked example of the reference §4.3, from its table
    asks = [("45285.2", "0.00100000"), ("45286.4", "1.54571953"), ("45286.6", "1.54571109"), ("45289.6", "1.54560911"),
            ("45290.2", "0.15890660"), ("45291.8", "1.54553491"), ("45294.7", "0.04454749"), ("45296.1", "0.35380000"),
            ("45297.5", "0.09945542"), ("45299.5", "0.18772827")]  # fmt: skip
    bids = [("45283.5", "0.10000000"), ("45283.4", "1.54582015"), ("45282.1", "0.10000000"), ("45281.0", "0.10000000"),
            ("45280.3", "1.54592586"), ("45279.0", "0.07990000"), ("45277.6", "0.03310103"), ("45277.5", "0.30000000"),
            ("45277.3", "1.54602737"), ("45276.6", "0.15445238")]  # fmt: skip
    fixed = lambda side: [(to_fixed(p, 1), to_fixed(q, 8)) for p, q in side]  # noqa: E731
    assert l2_checksum(fixed(asks), fixed(bids)) == 3310070434


def test_schema_check_explains_the_breaking_field() -> None:
    old = {"type": "record", "name": "T", "fields": [{"name": "a", "type": "string"}]}
    new = {
        "type": "record",
        "name": "T",
        "fields": [{"name": "a", "type": "string"}, {"name": "b", "type": "long"}],
    }
    assert explain(old, new) == "field 'b' was added without a default"
    ok = {"type": "record", "name": "T", "fields": [{"name": "a", "type": "string"}, {"name": "b", "type": ["null", "long"], "default": None}]}  # fmt: skip
    assert explain(old, ok) == ""
    changed = {"type": "record", "name": "T", "fields": [{"name": "a", "type": "long"}]}
    assert "changed type" in explain(old, changed)


def test_malformed_avsc_is_a_one_line_error(tmp_path: Path) -> None:
    for path in schema_dir().glob("*.avsc"):
        (tmp_path / path.name).write_text(path.read_text())
    (tmp_path / "kraken.trade.avsc").write_text('{"type": "record", "name": "Trade", "fields": [')
    with pytest.raises(ConfigError, match=r"kraken.trade.avsc: not valid JSON"):
        load_local(tmp_path)
    (tmp_path / "kraken.trade.avsc").write_text(
        '{"type": "record", "name": "Trade", "fields": [{"name": "x", "type": "nope"}]}'
    )
    with pytest.raises(ConfigError, match=r"kraken.trade.avsc: not a valid Avro schema"):
        load_local(tmp_path)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "kracked.cli",
            "schemas",
            "check",
            "--dir",
            str(tmp_path),
            "--registry-url",
            "http://127.0.0.1:9",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "kraken.trade.avsc: not a valid Avro schema" in proc.stderr


def test_cli_unknown_command_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["nope"]) == 2
    assert "unknown command" in capsys.readouterr().err
    assert cli_main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "stack" in out and "schemas" in out


def test_missing_java_and_maven_say_what_to_do(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no Java 99 or newer found.*install a JDK 99"):
        jars.java_binary(99)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ConfigError, match="mvn not found on PATH: install Maven"):
        jars.require_tool("mvn", "install Maven (e.g. apt-get install maven) or use docker compose")
