"""`kracked stack up | down | status`: a single-node Kafka (KRaft) broker and an Apicurio registry on 127.0.0.1.

State lives in a home folder (default `.kracked/` in the working directory): `stack.json` (pids, ports),
`stack.env` (the two `KRACKED_*` settings clients need) and `logs/`. `up` is idempotent: a healthy
running stack is reused. `down` sends SIGTERM, waits, then SIGKILL, and only ever signals the pids it
started (checked against their command line). The registry keeps schemas in memory, so every `up`
starts the broker with a fresh data folder too: ids in old records would otherwise dangle.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import asdict, dataclass, replace
from importlib import resources
from pathlib import Path

from kracked.errors import ConfigError
from kracked.stack import jars

log = logging.getLogger(__name__)

CCOMPAT_PATH = "/apis/ccompat/v7"
START_TIMEOUT_S = 120.0


@dataclass
class StackState:
    """What `up` started, persisted in `stack.json`."""

    kafka_pid: int
    kafka_started: int
    kafka_port: int
    controller_port: int
    registry_pid: int
    registry_started: int
    registry_port: int

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def registry_url(self) -> str:
        return f"http://127.0.0.1:{self.registry_port}{CCOMPAT_PATH}"


def default_home() -> Path:
    return Path(os.environ.get("KRACKED_HOME") or ".kracked").absolute()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def check_port_free(port: int, what: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError as exc:
            raise ConfigError(
                f"port {port} for the {what} is in use on 127.0.0.1: free it or pass another port (0 = any free port)"
            ) from exc


def cluster_id() -> str:
    # Kafka's Uuid.toString(): URL-safe base64 of 16 random bytes without padding, never starting with '-'.
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not text.startswith("-"):
            return text


def _start_ticks(pid: int) -> int:
    """The process start time from /proc (field 22 of stat), 0 when the process is gone or a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    except (OSError, IndexError):
        return 0
    return 0 if fields[0] == "Z" else int(fields[19])


def _alive(pid: int, started: int) -> bool:
    """True when `pid` runs and is the very process we started (same start time: a reused pid is never ours)."""
    return started != 0 and _start_ticks(pid) == started


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:])


class LocalStack:
    """Start, probe and stop the local broker and registry whose state lives under `home`."""

    def __init__(self, home: Path | None = None) -> None:
        self.home = (home or default_home()).absolute()
        self.logs = self.home / "logs"
        self.state_file = self.home / "stack.json"
        self.env_file = self.home / "stack.env"

    # ---- state -------------------------------------------------------------------------------
    def load(self) -> StackState | None:
        try:
            return StackState(**json.loads(self.state_file.read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def _save(self, state: StackState) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(json.dumps(asdict(state)))
        self.env_file.write_text(
            f"KRACKED_BOOTSTRAP_SERVERS={state.bootstrap_servers}\n"
            f"KRACKED_SCHEMA_REGISTRY_URL={state.registry_url}\n"
        )

    def status(self) -> dict[str, object]:
        """What runs where, as a dict (used by `kracked stack status`)."""
        state = self.load()
        if state is None:
            return {"kafka": "stopped", "registry": "stopped"}
        kafka_up = _alive(state.kafka_pid, state.kafka_started) and kafka_ready(state.bootstrap_servers, 2.0)
        reg_up = _alive(state.registry_pid, state.registry_started) and registry_ready(state.registry_url)
        return {
            "kafka": f"up at {state.bootstrap_servers} (pid {state.kafka_pid})" if kafka_up else "stopped",
            "registry": f"up at {state.registry_url} (pid {state.registry_pid})" if reg_up else "stopped",
            "env_file": str(self.env_file),
        }

    def running(self) -> StackState | None:
        state = self.load()
        if state is None:
            return None
        if not (
            _alive(state.kafka_pid, state.kafka_started)
            and _alive(state.registry_pid, state.registry_started)
        ):
            return None
        if kafka_ready(state.bootstrap_servers, 3.0) and registry_ready(state.registry_url):
            return state
        return None

    # ---- up ----------------------------------------------------------------------------------
    def up(self, kafka_port: int = 0, registry_port: int = 0) -> StackState:
        """Start both servers unless a healthy stack already runs here; wait until both answer."""
        current = self.running()
        if current is not None:
            log.info(
                "stack already running: kafka %s, registry %s",
                current.bootstrap_servers,
                current.registry_url,
            )
            return current
        self.down()  # clear half-dead leftovers of an earlier run
        java = jars.java_binary(17)
        registry_java = jars.java_binary(21)
        if kafka_port:
            check_port_free(kafka_port, "Kafka broker")
        if registry_port:
            check_port_free(registry_port, "schema registry")
        libs = jars.kafka_libs()
        apicurio = jars.apicurio_home()
        self.logs.mkdir(parents=True, exist_ok=True)
        kport = kafka_port or free_port()
        cport = free_port()
        rport = registry_port or free_port()
        kafka_pid = self._start_kafka(java, libs, kport, cport)
        kafka_started = _start_ticks(kafka_pid)
        try:
            registry_pid = self._start_registry(registry_java, apicurio, rport)
        except BaseException:
            _stop_pid(kafka_pid, kafka_started)
            raise
        state = StackState(
            kafka_pid, kafka_started, kport, cport, registry_pid, _start_ticks(registry_pid), rport
        )
        self._save(state)
        try:
            self._wait_ready(state)
        except BaseException:
            self.down()
            raise
        log.info("stack up: kafka %s, registry %s", state.bootstrap_servers, state.registry_url)
        return state

    def _start_kafka(self, java: str, libs: Path, port: int, controller: int) -> int:
        kdir = self.home / "kafka"
        shutil.rmtree(kdir, ignore_errors=True)
        (kdir / "data").mkdir(parents=True)
        (kdir / "tmp").mkdir()
        log4j = kdir / "log4j2.properties"
        log4j.write_text(resources.files("kracked.stack").joinpath("log4j2.properties").read_text())
        props = kdir / "server.properties"
        props.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@127.0.0.1:{controller}",
                    f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}",
                    f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
                    "controller.listener.names=CONTROLLER",
                    "inter.broker.listener.name=PLAINTEXT",
                    "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                    f"log.dirs={kdir / 'data'}",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=1",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "transaction.state.log.num.partitions=1",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    "num.partitions=1",
                    "auto.create.topics.enable=true",
                    "",
                ]
            )
        )
        common = [
            "-XX:+UseSerialGC",
            "-XX:-UsePerfData",
            "-XX:TieredStopAtLevel=1",
            f"-Djava.io.tmpdir={kdir / 'tmp'}",
            f"-Dkafka.logs.dir={self.logs / 'kafka'}",
            f"-Dlog4j2.configurationFile={log4j}",
            "-cp",
            f"{libs}/*",
        ]
        fmt = subprocess.run(
            [
                java,
                "-Xmx256m",
                *common,
                "kafka.tools.StorageTool",
                "format",
                "-t",
                cluster_id(),
                "-c",
                str(props),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if fmt.returncode != 0:
            raise ConfigError(f"Kafka storage format failed: {(fmt.stdout + fmt.stderr).strip()[-300:]}")
        return self._launch_kafka(java, common, props)

    def _launch_kafka(self, java: str, common: list[str], props: Path) -> int:
        out = (self.logs / "kafka-stdout.log").open("ab")
        proc = subprocess.Popen(
            [java, "-Xms256m", "-Xmx1g", *common, "kafka.Kafka", str(props)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=props.parent,
        )
        (props.parent / "launch.json").write_text(json.dumps({"java": java, "common": common}))
        return proc.pid

    # ---- broker outage (for failure tests): stop and start the broker, keeping its data --------
    def stop_kafka(self) -> None:
        """Stop the broker only (SIGTERM, then SIGKILL); its data and the registry stay."""
        state = self.load()
        if state is None:
            raise ConfigError("no local stack here")
        _stop_pid(state.kafka_pid, state.kafka_started)

    def start_kafka(self) -> StackState:
        """Start the broker again on the same ports and data after `stop_kafka`; waits until ready."""
        state = self.load()
        if state is None:
            raise ConfigError("no local stack here")
        props = self.home / "kafka" / "server.properties"
        launch = json.loads((self.home / "kafka" / "launch.json").read_text())
        pid = self._launch_kafka(launch["java"], launch["common"], props)
        state = replace(state, kafka_pid=pid, kafka_started=_start_ticks(pid))
        self._save(state)
        self._wait_ready(state)
        return state

    def _start_registry(self, java: str, home: Path, port: int) -> int:
        rdir = self.home / "registry"
        shutil.rmtree(rdir, ignore_errors=True)
        rdir.mkdir(parents=True)
        out = (self.logs / "registry.log").open("wb")
        proc = subprocess.Popen(
            [
                java,
                "-Xmx512m",
                "-XX:+UseSerialGC",
                "-XX:-UsePerfData",
                f"-Djava.io.tmpdir={rdir}",
                "-Dquarkus.http.host=127.0.0.1",
                f"-Dquarkus.http.port={port}",
                # the management interface (health, metrics) defaults to *:9000: keep it on loopback, free port
                "-Dquarkus.management.host=127.0.0.1",
                f"-Dquarkus.management.port={free_port()}",
                "-jar",
                str(home / "quarkus-run.jar"),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=rdir,
        )
        return proc.pid

    def _wait_ready(self, state: StackState) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        kafka_ok = registry_ok = False
        while time.monotonic() < deadline:
            if not _alive(state.kafka_pid, state.kafka_started):
                raise ConfigError(
                    "Kafka broker exited during start-up; log tail:\n"
                    + _tail(self.logs / "kafka" / "server.log")
                    + "\n"
                    + _tail(self.logs / "kafka-stdout.log")
                )
            if not _alive(state.registry_pid, state.registry_started):
                raise ConfigError(
                    "schema registry exited during start-up; log tail:\n" + _tail(self.logs / "registry.log")
                )
            kafka_ok = kafka_ok or kafka_ready(state.bootstrap_servers, 2.0)
            registry_ok = registry_ok or registry_ready(state.registry_url)
            if kafka_ok and registry_ok:
                return
            time.sleep(0.5)
        which = "Kafka broker" if not kafka_ok else "schema registry"
        logfile = self.logs / ("kafka/server.log" if not kafka_ok else "registry.log")
        raise ConfigError(f"{which} not ready after {START_TIMEOUT_S:.0f}s; log tail:\n{_tail(logfile)}")

    # ---- down --------------------------------------------------------------------------------
    def down(self) -> bool:
        """Stop whatever this home started. Returns True when something was running."""
        state = self.load()
        if state is None:
            return False
        stopped = False
        for pid, started in (
            (state.registry_pid, state.registry_started),
            (state.kafka_pid, state.kafka_started),
        ):
            stopped |= _stop_pid(pid, started)
        for path in (self.state_file, self.env_file):
            path.unlink(missing_ok=True)
        return stopped


def _stop_pid(pid: int, started: int, grace_s: float = 20.0) -> bool:
    if not _alive(pid, started):
        return False
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not _alive(pid, started):
            break
        time.sleep(0.2)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    # When the stack was started by this very process (tests), collect the child so no zombie remains.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    return True


def kafka_ready(bootstrap: str, timeout: float) -> bool:
    """Protocol-level readiness: the broker answers a metadata request with at least one broker."""
    from confluent_kafka.admin import AdminClient

    try:
        admin = AdminClient(
            {"bootstrap.servers": bootstrap, "socket.timeout.ms": int(timeout * 1000), "log_level": 0}
        )
        meta = admin.list_topics(timeout=timeout)
        return len(meta.brokers) > 0
    except Exception:  # any failure means "not ready yet"
        return False


def registry_ready(url: str) -> bool:
    """The registry answers the Confluent-compatible subjects listing."""
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/subjects", timeout=2) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False
