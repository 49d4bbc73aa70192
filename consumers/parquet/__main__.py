"""`kracked parquet`: archive topics as a Parquet dataset (Hive layout, zstd, exact decimals, µs UTC)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from consumers.parquet.service import DEFAULT_TOPICS, ParquetService
from consumers.parquet.writer import MiB, WriterConfig
from consumers.runtime import RuntimeOptions
from kracked.errors import ConfigError
from kracked.service import common_parser, service_main
from kracked.settings import KafkaSettings
from schemas.topics import find_topic


def build(args: argparse.Namespace, settings: KafkaSettings) -> tuple[ParquetService, RuntimeOptions]:
    root = args.dir or os.environ.get("KRACKED_PARQUET_DIR")
    if not root:
        raise ConfigError("no dataset folder: pass --dir or set KRACKED_PARQUET_DIR")
    try:
        topics = tuple(find_topic(t.strip()) for t in args.topics.split(",") if t.strip())
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    path = Path(root)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the dataset folder {path}: {exc.strerror}") from None
    config = WriterConfig(max_rows=args.max_rows, max_bytes=args.max_mb * MiB, max_age_s=args.max_age_s)
    service = ParquetService(
        path, topics, settings.topic_prefix, config, args.wide_depth, args.compact_every_s
    )
    return service, RuntimeOptions(group_id=args.group, commit_interval_s=args.commit_interval_s)


def parser() -> argparse.ArgumentParser:
    p = common_parser("kracked parquet", __doc__, "kracked-parquet")
    p.add_argument("--dir", default=None, help="dataset root (KRACKED_PARQUET_DIR)")
    p.add_argument("--topics", default=",".join(t.value for t in DEFAULT_TOPICS), help="topics to archive")
    p.add_argument("--max-rows", type=int, default=500_000, help="roll a partition's files at this many rows")
    p.add_argument("--max-mb", type=int, default=32, help="roll at this many MiB buffered per partition")
    p.add_argument("--max-age-s", type=float, default=300.0, help="roll at this age (seconds)")
    p.add_argument(
        "--commit-interval-s", type=float, default=1.0, help="how often durable offsets are committed"
    )
    p.add_argument("--wide-depth", type=int, default=10, help="levels of the wide top-of-book dataset")
    p.add_argument(
        "--compact-every-s", type=float, default=300.0, help="compact small files this often (0 = never)"
    )
    return p


def main(argv: Sequence[str]) -> int:
    return service_main(argv, parser(), build)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
