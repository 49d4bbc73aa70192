"""Fetch the pinned Kafka broker jars and the Apicurio Registry once, with Maven, into a shared cache.

The cache is keyed by version and guarded by a file lock, so parallel runs never fetch twice and a
half-finished fetch is never used (a marker file is written last).
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import shutil
import subprocess
import tarfile
from importlib import resources
from pathlib import Path

from kracked.errors import ConfigError

KAFKA_VERSION = "4.3.1"
APICURIO_VERSION = "3.3.3"
LOG4J_VERSION = "2.26.1"
SLF4J_VERSION = "2.0.17"
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"

log = logging.getLogger(__name__)


def cache_root() -> Path:
    """`KRACKED_CACHE_DIR`, else `$XDG_CACHE_HOME/kracked`, else `~/.cache/kracked`."""
    env = os.environ.get("KRACKED_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kracked"


def require_tool(name: str, hint: str) -> str:
    """Return the path of `name` on PATH or raise a one-line ConfigError with what to do."""
    path = shutil.which(name)
    if not path:
        raise ConfigError(f"{name} not found on PATH: {hint}")
    return path


def _java_major(java: str) -> int:
    try:
        out = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=30, check=False
        ).stderr
    except (OSError, subprocess.TimeoutExpired):
        return 0
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not match:
        return 0
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def java_binary(min_major: int = 17) -> str:
    """A Java binary of at least `min_major`.

    Looked for in order: `KRACKED_JAVA`, `$JAVA_HOME/bin/java`, `java` on PATH, then every JDK under
    /usr/lib/jvm (newest first). The broker needs 17; Apicurio Registry 3.3 is compiled for 21.
    """
    candidates: list[str] = []
    for env in ("KRACKED_JAVA",):
        if os.environ.get(env):
            candidates.append(os.environ[env])
    home = os.environ.get("JAVA_HOME")
    if home:
        candidates.append(str(Path(home, "bin", "java")))
    on_path = shutil.which("java")
    if on_path:
        candidates.append(on_path)
    jvm_root = Path("/usr/lib/jvm")
    if jvm_root.is_dir():
        candidates += [str(p / "bin" / "java") for p in sorted(jvm_root.iterdir(), reverse=True)]
    seen: set[str] = set()
    for java in candidates:
        if java in seen or not Path(java).exists():
            continue
        seen.add(java)
        if _java_major(java) >= min_major:
            return java
    raise ConfigError(
        f"no Java {min_major} or newer found (looked at KRACKED_JAVA, JAVA_HOME, PATH, /usr/lib/jvm): "
        f"install a JDK {min_major}+ or set KRACKED_JAVA to its java binary"
    )


MVN_HINT = "install Maven (e.g. apt-get install maven) or use docker compose"


def _run_mvn(args: list[str], what: str) -> None:
    mvn = require_tool("mvn", MVN_HINT)
    proc = subprocess.run([mvn, "-B", "-q", *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-5:]
        raise ConfigError(f"mvn could not fetch {what} from Maven Central: {' | '.join(tail)}")


def _locked(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def kafka_libs() -> Path:
    """Directory holding the broker's runtime classpath (fetched on first use)."""
    target = cache_root() / f"kafka-{KAFKA_VERSION}"
    libs = target / "libs"
    done = target / ".complete"
    if done.exists():
        return libs
    fd = _locked(cache_root() / f"kafka-{KAFKA_VERSION}.lock")
    try:
        if done.exists():
            return libs
        require_tool("mvn", MVN_HINT)
        log.info("fetching Kafka %s jars with Maven into %s", KAFKA_VERSION, libs)
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        pom = resources.files("kracked.stack").joinpath("kafka-pom.xml").read_text()
        pom = (
            pom.replace("@KAFKA_VERSION@", KAFKA_VERSION)
            .replace("@LOG4J_VERSION@", LOG4J_VERSION)
            .replace("@SLF4J_VERSION@", SLF4J_VERSION)
        )
        (target / "pom.xml").write_text(pom)
        _run_mvn(
            [
                "-f",
                str(target / "pom.xml"),
                f"{DEPENDENCY_PLUGIN}:copy-dependencies",
                f"-DoutputDirectory={libs}",
                "-DincludeScope=runtime",
            ],
            f"Kafka {KAFKA_VERSION}",
        )
        if not any(libs.glob("kafka_2.13-*.jar")):
            raise ConfigError(f"Kafka jars missing after the fetch in {libs}")
        done.write_text(KAFKA_VERSION)
        return libs
    finally:
        os.close(fd)


def apicurio_home() -> Path:
    """Directory holding Apicurio Registry's `quarkus-run.jar` (fetched and unpacked on first use)."""
    target = cache_root() / f"apicurio-{APICURIO_VERSION}"
    done = target / ".complete"
    if done.exists():
        return _quarkus_dir(target)
    fd = _locked(cache_root() / f"apicurio-{APICURIO_VERSION}.lock")
    try:
        if done.exists():
            return _quarkus_dir(target)
        require_tool("mvn", MVN_HINT)
        log.info("fetching Apicurio Registry %s with Maven into %s", APICURIO_VERSION, target)
        shutil.rmtree(target, ignore_errors=True)
        download = target / "download"
        download.mkdir(parents=True)
        _run_mvn(
            [
                f"{DEPENDENCY_PLUGIN}:copy",
                f"-Dartifact=io.apicurio:apicurio-registry-app:{APICURIO_VERSION}:tar.gz:all",
                f"-DoutputDirectory={download}",
            ],
            f"Apicurio Registry {APICURIO_VERSION}",
        )
        archives = list(download.glob("*.tar.gz"))
        if not archives:
            raise ConfigError(f"Apicurio archive missing after the fetch in {download}")
        with tarfile.open(archives[0]) as tar:
            tar.extractall(target / "app", filter="data")
        for archive in archives:
            archive.unlink()
        home = _quarkus_dir(target)
        done.write_text(APICURIO_VERSION)
        return home
    finally:
        os.close(fd)


def _quarkus_dir(target: Path) -> Path:
    # The 3.3.x archive has no top-level folder; older ones unpack to quarkus-app/.
    for jar in sorted((target / "app").rglob("quarkus-run.jar")):
        return jar.parent
    raise ConfigError(f"quarkus-run.jar not found under {target}; delete that folder and retry")
