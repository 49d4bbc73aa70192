"""docker-compose.yml is checked structurally (no Docker engine here): it parses, every kracked service
runs a real `kracked` command, every KRACKED_* variable it sets is a documented setting, images are
pinned, and dependencies wait on health or completion."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from kracked.cli import COMMANDS
from kracked.settings import DOCUMENTED

REPO = Path(__file__).resolve().parents[2]


def _compose() -> dict[str, Any]:
    data = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def test_compose_parses_and_has_the_stack() -> None:
    services = _compose()["services"]
    for name in (
        "kafka",
        "registry",
        "kafka-ui",
        "init",
        "connector",
        "book",
        "bars",
        "spread",
        "parquet",
        "orders",
    ):
        assert name in services, name
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"


def test_every_image_is_pinned_and_every_app_service_is_a_kracked_command() -> None:
    for name, service in _compose()["services"].items():
        if "image" in service and "build" not in service:
            image = service["image"]
            assert re.search(r":[\w.\-]+$", image) and not image.endswith(":latest"), f"{name}: {image}"
        if service.get("build"):
            command = service["command"]
            assert command[0] in COMMANDS, f"{name}: {command}"
            if command[0] == "schemas":
                assert command[1] in ("init", "register", "check")


def test_every_kracked_variable_is_documented() -> None:
    text = (REPO / "docker-compose.yml").read_text()
    used = set(re.findall(r"\b(KRACKED_[A-Z_]+)\b", text))
    assert used, "compose sets no KRACKED_ variable"
    assert used <= set(DOCUMENTED), used - set(DOCUMENTED)
    env_example = (REPO / ".env.example").read_text()
    readme = (REPO / "README.md").read_text()
    for name in DOCUMENTED:
        assert f"{name}=" in env_example, f"{name} missing from .env.example"
        assert name in readme, f"{name} missing from README"


def test_dependencies_wait_for_health_or_completion() -> None:
    services = _compose()["services"]
    for name, service in services.items():
        for dep, cond in (service.get("depends_on") or {}).items():
            assert cond["condition"] in ("service_healthy", "service_completed_successfully"), (name, dep)
            if cond["condition"] == "service_healthy":
                assert "healthcheck" in services[dep], dep
    assert services["connector"]["depends_on"]["init"]["condition"] == "service_completed_successfully"


def test_every_variable_the_code_reads_is_documented() -> None:
    used: set[str] = set()
    for package in ("kracked", "connector", "consumers", "schemas"):
        for path in (REPO / package).rglob("*.py"):
            used |= set(re.findall(r"\"(KRACKED_[A-Z0-9_]+)\"", path.read_text()))
    assert used, "no KRACKED_ variable found"
    assert used <= set(DOCUMENTED), sorted(used - set(DOCUMENTED))


def test_dockerfile_copies_every_package_and_builds_the_native_extension() -> None:
    """No engine here to build it: every COPY source exists, every Python package and the native
    extension (built into a wheel in its own stage) get into the image, base images are pinned."""
    lines = [line.split() for line in (REPO / "Dockerfile").read_text().splitlines() if line.strip()]
    copied = set()
    for words in lines:
        if words[0] == "FROM":
            assert re.search(r":[\w.\-]+$", words[1]) and not words[1].endswith(":latest"), words
        if words[0] == "COPY" and not words[1].startswith("--from"):
            for source in words[1:-1]:
                assert (REPO / source).exists(), source
                copied.add(source)
    assert {"kracked", "schemas", "connector", "consumers", "native", "pyproject.toml"} <= copied
    text = (REPO / "Dockerfile").read_text()
    assert "pip wheel --no-cache-dir --wheel-dir /wheels /native" in text
    assert "pip install --no-cache-dir /wheels/*.whl ." in text
