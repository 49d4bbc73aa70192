"""Integration fixtures: one real Kafka broker and schema registry per test run, never a mock.

Order of choice (session scope):
1. `KRACKED_BOOTSTRAP_SERVERS` + `KRACKED_SCHEMA_REGISTRY_URL` when set (compose, a user's cluster);
2. testcontainers when a Docker engine answers (apache/kafka + Apicurio images);
3. the local stack from Maven Central jars (`kracked stack`), in a private state folder.
If none can be had the run FAILS with the reason: integration tests are never skipped.
Each test gets its own topic prefix (so its own topics and subjects) and consumer group names.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from kracked.errors import ConfigError
from kracked.kafka import check_broker, ensure_topics
from kracked.settings import KafkaSettings
from kracked.stack.local import LocalStack, registry_ready
from schemas.topics import COMPACTED, Topic

KAFKA_IMAGE = "apache/kafka:4.1.1"
APICURIO_IMAGE = "apicurio/apicurio-registry:3.3.3"


@dataclass(frozen=True)
class KafkaEnv:
    """The broker and registry of this run, and how they were obtained."""

    bootstrap_servers: str
    schema_registry_url: str
    kind: str  # external | docker | local-stack


@dataclass(frozen=True)
class KafkaTest:
    """One test's isolated view: a unique topic prefix and group-name factory."""

    env: KafkaEnv
    settings: KafkaSettings

    @property
    def prefix(self) -> str:
        return self.settings.topic_prefix

    def topic(self, topic: Topic) -> str:
        return topic.name_with(self.prefix)

    def group(self, name: str) -> str:
        return f"{self.prefix}{name}-{uuid.uuid4().hex[:6]}"

    def env_vars(self) -> dict[str, str]:
        """Environment for a subprocess (a kracked command) that should use this test's topics."""
        return {
            **os.environ,
            "KRACKED_BOOTSTRAP_SERVERS": self.settings.bootstrap_servers,
            "KRACKED_SCHEMA_REGISTRY_URL": self.settings.schema_registry_url,
            "KRACKED_TOPIC_PREFIX": self.prefix,
        }

    def create_topics(self, *topics: Topic, partitions: int = 1) -> None:
        names = [self.topic(t) for t in (topics or tuple(Topic))]
        ensure_topics(self.settings, names, partitions, [self.topic(t) for t in COMPACTED])


def _external() -> KafkaEnv | None:
    bootstrap = os.environ.get("KRACKED_BOOTSTRAP_SERVERS", "").strip()
    registry = os.environ.get("KRACKED_SCHEMA_REGISTRY_URL", "").strip()
    if not bootstrap:
        return None
    if not registry:
        pytest.fail("KRACKED_BOOTSTRAP_SERVERS is set but KRACKED_SCHEMA_REGISTRY_URL is not", pytrace=False)
    try:
        check_broker(KafkaSettings(bootstrap, registry), timeout=15)
    except ConfigError as exc:
        pytest.fail(f"KRACKED_BOOTSTRAP_SERVERS is set but unusable: {exc}", pytrace=False)
    if not registry_ready(registry):
        pytest.fail(f"KRACKED_SCHEMA_REGISTRY_URL={registry} does not answer /subjects", pytrace=False)
    return KafkaEnv(bootstrap, registry.rstrip("/"), "external")


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return True
    except Exception:  # no SDK, no socket, no engine: all mean "no Docker here"
        return False


def _docker(request: pytest.FixtureRequest) -> KafkaEnv:  # pragma: no cover - needs a Docker engine
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs

    from kracked.stack.local import free_port

    host_port = free_port()
    kafka = (
        DockerContainer(KAFKA_IMAGE)
        .with_bind_ports(9092, host_port)
        .with_env("KAFKA_NODE_ID", "1")
        .with_env("KAFKA_PROCESS_ROLES", "broker,controller")
        .with_env("KAFKA_LISTENERS", "PLAINTEXT://:9092,CONTROLLER://:9093")
        .with_env("KAFKA_ADVERTISED_LISTENERS", f"PLAINTEXT://127.0.0.1:{host_port}")
        .with_env("KAFKA_LISTENER_SECURITY_PROTOCOL_MAP", "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT")
        .with_env("KAFKA_CONTROLLER_QUORUM_VOTERS", "1@localhost:9093")
        .with_env("KAFKA_CONTROLLER_LISTENER_NAMES", "CONTROLLER")
        .with_env("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "1")
        .with_env("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "1")
        .with_env("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1")
        .with_env("KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS", "0")
    )
    registry = DockerContainer(APICURIO_IMAGE).with_exposed_ports(8080)
    kafka.start()
    request.addfinalizer(kafka.stop)
    registry.start()
    request.addfinalizer(registry.stop)
    wait_for_logs(kafka, "Kafka Server started", timeout=120)
    url = f"http://{registry.get_container_host_ip()}:{registry.get_exposed_port(8080)}/apis/ccompat/v7"
    return KafkaEnv(f"127.0.0.1:{host_port}", url, "docker")


def _local_stack(request: pytest.FixtureRequest, home: Path) -> KafkaEnv:
    stack = LocalStack(home)
    try:
        state = stack.up()
    except ConfigError as exc:
        pytest.fail(f"no Kafka for the integration tests: local stack failed: {exc}", pytrace=False)
    request.addfinalizer(stack.down)
    return KafkaEnv(state.bootstrap_servers, state.registry_url, "local-stack")


@pytest.fixture(scope="session")
def kafka_env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> KafkaEnv:
    env = _external()
    if env is None and _docker_answers():
        env = _docker(request)
    if env is None:
        env = _local_stack(request, tmp_path_factory.mktemp("stack"))
    return env


@pytest.fixture
def kafka(kafka_env: KafkaEnv) -> Iterator[KafkaTest]:
    """A test's own namespace on the shared broker: every topic name carries a unique prefix."""
    prefix = f"t{uuid.uuid4().hex[:10]}."
    settings = KafkaSettings(kafka_env.bootstrap_servers, kafka_env.schema_registry_url, prefix)
    yield KafkaTest(kafka_env, settings)


def with_prefix(test: KafkaTest, prefix: str) -> KafkaTest:
    return replace(test, settings=replace(test.settings, topic_prefix=prefix))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.integration)
