"""Register the `.avsc` files and check them against the registry (BACKWARD compatibility).

`check` asks the registry whether each local schema may follow the latest registered version and,
when it may not, explains which field breaks BACKWARD compatibility (a reader with the new schema
must read data written with the old one: a new field needs a default, a type may not narrow).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from kracked.errors import ConfigError
from schemas.topics import Topic, schema_dir

COMPATIBILITY = "BACKWARD"


def load_local(directory: Path | None = None) -> dict[Topic, str]:
    """Every topic's schema text; ConfigError naming the file when one is missing or malformed."""
    folder = directory or schema_dir()
    texts: dict[Topic, str] = {}
    for topic in Topic:
        path = folder / topic.schema_file
        if not path.exists():
            raise ConfigError(f"{path}: schema file missing for topic {topic.value}")
        text = path.read_text()
        try:
            fastavro.parse_schema(json.loads(text))
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
        except Exception as exc:  # fastavro's SchemaParseException and friends
            raise ConfigError(f"{path}: not a valid Avro schema ({exc})") from None
        texts[topic] = text
    return texts


def _client_error(exc: Exception, url: str) -> ConfigError:
    return ConfigError(
        f"schema registry at {url} failed ({type(exc).__name__}: {str(exc)[:160]}): "
        "start it with `kracked stack up` or fix KRACKED_SCHEMA_REGISTRY_URL"
    )


def register_all(
    client: SchemaRegistryClient, url: str, prefix: str = "", directory: Path | None = None
) -> dict[str, int]:
    """Set BACKWARD on every subject and register every schema; returns subject → schema id."""
    ids: dict[str, int] = {}
    for topic, text in load_local(directory).items():
        subject = f"{topic.name_with(prefix)}-value"
        try:
            client.set_compatibility(subject_name=subject, level=COMPATIBILITY)
            ids[subject] = int(client.register_schema(subject, Schema(text, "AVRO")))
        except SchemaRegistryError as exc:
            if exc.http_status_code == 409:
                raise ConfigError(
                    f"{subject}: incompatible with the registered schema: {exc.error_message}"
                ) from None
            raise _client_error(exc, url) from None
        except Exception as exc:
            raise _client_error(exc, url) from None
    return ids


@dataclass(frozen=True)
class CheckResult:
    subject: str
    compatible: bool
    reason: str


def check_all(
    client: SchemaRegistryClient, url: str, prefix: str = "", directory: Path | None = None
) -> list[CheckResult]:
    """Test each local schema against the latest registered version of its subject."""
    results: list[CheckResult] = []
    for topic, text in load_local(directory).items():
        subject = f"{topic.name_with(prefix)}-value"
        try:
            latest = client.get_latest_version(subject)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                results.append(CheckResult(subject, True, "not registered yet"))
                continue
            raise _client_error(exc, url) from None
        except Exception as exc:
            raise _client_error(exc, url) from None
        try:
            ok = bool(client.test_compatibility(subject, Schema(text, "AVRO")))
        except Exception as exc:
            raise _client_error(exc, url) from None
        old = json.loads(latest.schema.schema_str or "{}")
        reason = "compatible" if ok else explain(old, json.loads(text)) or "the registry refused it"
        results.append(CheckResult(subject, ok, reason))
    return results


def _type_name(t: Any) -> str:
    if isinstance(t, dict):
        return str(t.get("logicalType") or t.get("type"))
    if isinstance(t, list):
        return "|".join(_type_name(x) for x in t)
    return str(t)


def explain(old: dict[str, Any], new: dict[str, Any], path: str = "") -> str:
    """Which field makes `new` unable to read data written with `old` (BACKWARD), or ''."""
    old_fields = {f["name"]: f for f in old.get("fields", [])}
    problems: list[str] = []
    for field in new.get("fields", []):
        name = f"{path}{field['name']}"
        before = old_fields.get(field["name"])
        if before is None:
            if "default" not in field:
                problems.append(f"field '{name}' was added without a default")
            continue
        bt, nt = before["type"], field["type"]
        if isinstance(bt, dict) and isinstance(nt, dict) and bt.get("type") == "record" == nt.get("type"):
            inner = explain(bt, nt, f"{name}.")
            if inner:
                problems.append(inner)
        elif _type_name(bt) != _type_name(nt) and not (
            isinstance(nt, list) and _type_name(bt) in _type_name(nt)
        ):
            problems.append(f"field '{name}' changed type {_type_name(bt)} -> {_type_name(nt)}")
    return "; ".join(problems)
