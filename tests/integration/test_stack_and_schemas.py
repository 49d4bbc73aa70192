"""Foundation end to end: `kracked stack` lifecycle, `kracked schemas`, and one-line errors on bad input."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from kracked.stack.local import LocalStack, free_port
from schemas.topics import Topic, schema_dir
from tests.integration.conftest import KafkaTest

REPO = Path(__file__).resolve().parents[2]


def kracked(
    *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kracked.cli", *args],
        capture_output=True,
        text=True,
        env=env or dict(os.environ),
        timeout=timeout,
        check=False,
        cwd=REPO,
    )


def test_stack_up_status_down_leaves_nothing_running(tmp_path: Path) -> None:
    home = tmp_path / "home"
    up = kracked("stack", "up", "--home", str(home))
    assert up.returncode == 0, up.stderr
    env_file = (home / "stack.env").read_text()
    assert env_file.startswith("KRACKED_BOOTSTRAP_SERVERS=127.0.0.1:")
    assert "KRACKED_SCHEMA_REGISTRY_URL=http://127.0.0.1:" in env_file
    state = LocalStack(home).load()
    assert state is not None
    try:
        status = kracked("stack", "status", "--home", str(home))
        assert status.returncode == 0, status.stdout
        report = json.loads(status.stdout)
        assert report["kafka"].startswith("up at 127.0.0.1:") and report["registry"].startswith(
            "up at http://127.0.0.1:"
        )
        again = kracked("stack", "up", "--home", str(home))  # idempotent: same servers
        assert again.returncode == 0 and again.stdout == up.stdout
    finally:
        down = kracked("stack", "down", "--home", str(home))
    assert down.returncode == 0 and "stack stopped" in down.stdout
    for pid in (state.kafka_pid, state.registry_pid):
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
    assert json.loads(kracked("stack", "status", "--home", str(home)).stdout)["kafka"] == "stopped"
    assert kracked("stack", "down", "--home", str(home)).stdout.strip() == "stack was not running"


def test_port_in_use_is_a_one_line_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = kracked("stack", "up", "--home", str(tmp_path), "--kafka-port", str(port))
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert f"port {port} for the Kafka broker is in use" in proc.stderr


def test_maven_missing_is_a_one_line_error(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path), "KRACKED_CACHE_DIR": str(tmp_path / "cache")}
    proc = kracked("stack", "up", "--home", str(tmp_path / "home"), env=env)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "mvn not found on PATH" in proc.stderr


def test_unreachable_broker_and_registry_are_one_line_errors() -> None:
    dead = f"127.0.0.1:{free_port()}"
    env = {**os.environ, "KRACKED_BOOTSTRAP_SERVERS": dead, "KRACKED_SCHEMA_REGISTRY_URL": f"http://{dead}"}
    proc = kracked("schemas", "register", env=env)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and f"schema registry at http://{dead} failed" in proc.stderr
    from kracked.errors import ConfigError
    from kracked.kafka import check_broker
    from kracked.settings import KafkaSettings

    try:
        check_broker(KafkaSettings(dead, f"http://{dead}"), timeout=3)
    except ConfigError as exc:
        assert f"Kafka broker unreachable at {dead}" in str(exc) and "\n" not in str(exc)
    else:
        raise AssertionError("no error for a dead broker")


def test_schemas_register_then_check_flags_an_incompatible_field(kafka: KafkaTest, tmp_path: Path) -> None:
    env = kafka.env_vars()
    reg = kracked("schemas", "register", env=env)
    assert reg.returncode == 0, reg.stderr
    assert f"{kafka.prefix}kraken.book-value: id" in reg.stdout
    ok = kracked("schemas", "check", env=env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.count(": ok (compatible)") == len(Topic)
    for path in schema_dir().glob("*.avsc"):
        (tmp_path / path.name).write_text(path.read_text())
    trade = json.loads((tmp_path / "kraken.trade.avsc").read_text())
    trade["fields"].append({"name": "venue", "type": "string", "doc": "added without a default"})
    (tmp_path / "kraken.trade.avsc").write_text(json.dumps(trade))
    bad = kracked("schemas", "check", "--dir", str(tmp_path), env=env)
    assert bad.returncode == 1
    assert (
        f"{kafka.prefix}kraken.trade-value: INCOMPATIBLE (field 'venue' was added without a default)"
        in bad.stdout
    )
