"""`kracked sim` on the command line: flags, printed URLs, clean stop on SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest
from websockets.sync.client import connect

from connector.kraken.sim.server import build_parser, config_from_args
from kracked.errors import ConfigError
from tests.conftest import KRAKEN_CAPTURES


def test_flags_map_to_the_config() -> None:
    args = build_parser().parse_args(
        [
            "--symbols", "BTC/USD, SOL/USD",
            "--rate", "max",
            "--seed", "9",
            "--drop-every", "100",
            "--stall-every", "50",
            "--stall-seconds", "1.5",
            "--malformed-rate", "0.01",
            "--bad-checksum-rate", "0.02",
            "--trade-gap-rate", "0.03",
            "--reject-symbols", "SOL/USD",
            "--book-depth-default", "25",
        ]
    )  # fmt: skip
    cfg = config_from_args(args)
    assert cfg.symbols == ("BTC/USD", "SOL/USD") and cfg.rate is None and cfg.seed == 9
    assert cfg.book_depth_default == 25
    f = cfg.faults
    assert (f.drop_every, f.stall_every, f.stall_seconds) == (100, 50, 1.5)
    assert (f.malformed_rate, f.bad_checksum_rate, f.trade_gap_rate) == (0.01, 0.02, 0.03)
    assert f.reject_symbols == frozenset({"SOL/USD"})
    assert config_from_args(build_parser().parse_args(["--rate", "0"])).rate is None
    assert config_from_args(build_parser().parse_args(["--rate", "2.5"])).rate == 2.5


def test_bad_configuration_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="replay file not found"):
        config_from_args(build_parser().parse_args(["--replay", "/nonexistent/file.jsonl"]))
    with pytest.raises(ConfigError, match="BASE/QUOTE"):
        config_from_args(build_parser().parse_args(["--symbols", "BTCUSD"]))


def test_cli_prints_urls_serves_and_stops_on_sigterm() -> None:
    capture = KRAKEN_CAPTURES / "tickvault_btc_book.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "connector.kraken.sim", "--replay", str(capture), "--rate", "max"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        urls = dict(proc.stdout.readline().strip().split("=", 1) for _ in range(4))
        assert set(urls) == {
            "KRACKED_KRAKEN_WS_URL",
            "KRACKED_KRAKEN_WS_AUTH_URL",
            "KRACKED_KRAKEN_WS_L3_URL",
            "KRACKED_KRAKEN_REST_URL",
        }
        assert urls["KRACKED_KRAKEN_WS_URL"].startswith("ws://127.0.0.1:")
        with connect(urls["KRACKED_KRAKEN_WS_URL"]) as ws:
            assert json.loads(ws.recv(timeout=5))["channel"] == "status"
            ws.send(json.dumps({"method": "subscribe", "params": {"channel": "book", "symbol": ["BTC/USD"]}}))
            assert json.loads(ws.recv(timeout=5))["success"] is True
            snapshot = ws.recv(timeout=5)
            assert snapshot == capture.read_text().splitlines()[2]  # the captured snapshot line
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        _, err = proc.communicate(timeout=5)
        assert "stop requested" in err and "simulator stopped" in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
