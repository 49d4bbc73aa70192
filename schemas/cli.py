"""`kracked schemas register | check | init`: register the `.avsc` files, test them against the registry,
or (init) create every topic and register every schema, as the compose init service does."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from kracked.kafka import check_broker, ensure_topics
from kracked.logs import setup_logging
from kracked.settings import KafkaSettings
from schemas.registry import check_all, register_all
from schemas.serde import registry_client
from schemas.topics import COMPACTED, Topic


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="kracked schemas", description=__doc__)
    parser.add_argument("action", choices=["register", "check", "init"])
    parser.add_argument("--registry-url", default=None, help="overrides KRACKED_SCHEMA_REGISTRY_URL")
    parser.add_argument("--topic-prefix", default=None, help="overrides KRACKED_TOPIC_PREFIX")
    parser.add_argument(
        "--dir", type=Path, default=None, help="folder of .avsc files (default: the installed ones)"
    )
    args = parser.parse_args(argv)
    setup_logging()
    if args.registry_url:
        url, prefix = args.registry_url, args.topic_prefix or ""
    else:
        settings = KafkaSettings.from_env()
        url = settings.schema_registry_url
        prefix = settings.topic_prefix if args.topic_prefix is None else args.topic_prefix
    client = registry_client(url)
    if args.action == "init":
        settings = KafkaSettings.from_env()
        check_broker(settings)
        names = [t.name_with(prefix) for t in Topic]
        ensure_topics(settings, names, compacted=[t.name_with(prefix) for t in COMPACTED])
        print(f"{len(names)} topics ready")
    if args.action in ("register", "init"):
        for subject, schema_id in register_all(client, url, prefix, args.dir).items():
            print(f"{subject}: id {schema_id}")
        return 0
    bad = 0
    for result in check_all(client, url, prefix, args.dir):
        print(f"{result.subject}: {'ok' if result.compatible else 'INCOMPATIBLE'} ({result.reason})")
        bad += not result.compatible
    if bad:
        print(f"kracked schemas: {bad} schema(s) incompatible with the registry (BACKWARD)", file=sys.stderr)
        return 1
    return 0
