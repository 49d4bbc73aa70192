"""`kracked replay`: replay a topic range (by time or offset) or a Parquet dataset, paced or at max speed,
into prefixed topics (`--into backtest.`) and/or through services run in-process (`--through book,bars`).

Examples:
  kracked replay --topics kraken.book,kraken.trade --from 2026-11-24T10:00:00Z --to 2026-11-24T11:00:00Z --into backtest.
  kracked replay --topics kraken.trade --through bars --speed max
  kracked replay --parquet ./data/parquet --topics kraken.trade --speed 10 --into backtest.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from consumers.replay.domain import merge, parse_speed
from consumers.replay.engine import Replayer, default_progress
from consumers.replay.source import Range, plan, read_span
from consumers.runtime import Service
from kracked.errors import ConfigError
from kracked.kafka import check_broker
from kracked.logs import setup_logging
from kracked.settings import KafkaSettings
from schemas.serde import Serde
from schemas.topics import find_topic

log = logging.getLogger(__name__)


def _intervals(text: str, flag: str) -> tuple[int, ...]:
    from consumers.bars.domain import parse_interval

    try:
        return tuple(parse_interval(v) for v in text.split(",") if v.strip())
    except ValueError as exc:
        raise ConfigError(f"{flag}: {exc}") from None


def _book(args: argparse.Namespace) -> Service:
    from consumers.book.service import BookService

    return BookService(top_n=args.book_top, cadence_ms=args.book_cadence_ms)


def _bars(args: argparse.Namespace) -> Service:
    from consumers.bars.service import BarsService

    return BarsService(_intervals(args.bars_intervals, "--bars-intervals"), args.bars_grace_ms)


def _spread(args: argparse.Namespace) -> Service:
    from consumers.spread.service import SpreadService

    return SpreadService(
        args.spread_source, _intervals(args.spread_intervals, "--spread-intervals"), args.spread_grace_ms
    )


# in-process services by name, built with the same settings as the live services (their own flags)
THROUGH: dict[str, Callable[[argparse.Namespace], Service]] = {
    "book": _book,
    "bars": _bars,
    "spread": _spread,
}


def build_services(names: list[str], args: argparse.Namespace) -> list[Service]:
    for name in names:
        if name not in THROUGH:
            raise ConfigError(f"--through {name!r}: unknown service (choose from {', '.join(THROUGH)})")
    return [THROUGH[name](args) for name in names]


def parse_time(text: str, flag: str) -> int:
    """ISO timestamp → ms since epoch (naive means UTC)."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{flag} {text!r} is not an ISO timestamp (e.g. 2026-11-24T10:00:00Z)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="kracked replay", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--topics",
        default="kraken.book,kraken.trade,kraken.ticker",
        help="topics to replay, in tie-break order",
    )
    p.add_argument("--from", dest="from_time", default=None, help="ISO start time (inclusive)")
    p.add_argument("--to", dest="to_time", default=None, help="ISO end time (exclusive)")
    p.add_argument("--from-offset", type=int, default=None, help="first offset of every partition")
    p.add_argument("--to-offset", type=int, default=None, help="end offset (exclusive) of every partition")
    p.add_argument(
        "--parquet", type=Path, default=None, help="replay a dataset written by `kracked parquet` instead"
    )
    p.add_argument(
        "--source-prefix", default=None, help="prefix of the source topics (default KRACKED_TOPIC_PREFIX)"
    )
    p.add_argument("--into", default="backtest.", help="prefix of the target topics (default backtest.)")
    p.add_argument("--through", default="", help="services to run in-process: book,bars,spread")
    p.add_argument(
        "--republish",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="re-publish the inputs under --into (default: yes unless --through)",
    )
    p.add_argument("--book-top", type=int, default=10, help="book: levels per side (as `kracked book --top`)")
    p.add_argument(
        "--book-cadence-ms",
        type=int,
        default=0,
        help="book: publish a symbol's top at most every N ms of event time (0 = every change)",
    )
    p.add_argument(
        "--bars-intervals", default="1m,5m,15m,30m,1h,4h,1d", help="bars: intervals (as `kracked bars`)"
    )
    p.add_argument("--bars-grace-ms", type=int, default=2000, help="bars: grace for late trades")
    p.add_argument(
        "--spread-source", choices=["ticker", "book.top"], default="book.top", help="spread: input"
    )
    p.add_argument("--spread-intervals", default="1m,5m,1h", help="spread: intervals")
    p.add_argument("--spread-grace-ms", type=int, default=2000, help="spread: grace for late samples")
    p.add_argument(
        "--speed", default="max", help="1 = real time by ts_event, N = N× faster, max = as fast as possible"
    )
    p.add_argument(
        "--engine",
        choices=["auto", "native", "python"],
        default="auto",
        help="auto = the native path when it can run this replay (--through book,bars on kraken.book/"
        "kraken.trade at max speed), else the Python engine; native = fail if it cannot",
    )
    p.add_argument("--log-level", default=None)
    return p


def main(argv: Sequence[str]) -> int:
    args = parser().parse_args(list(argv))
    setup_logging(args.log_level)
    try:
        speed = parse_speed(args.speed)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    try:
        topics = [find_topic(name.strip()) for name in args.topics.split(",") if name.strip()]
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    base = KafkaSettings.from_env()
    source_prefix = base.topic_prefix if args.source_prefix is None else args.source_prefix
    if args.into == source_prefix and args.parquet is None:
        raise ConfigError(
            f"--into {args.into!r} is the source prefix: replaying into the source topics would loop"
        )
    source = KafkaSettings(base.bootstrap_servers, base.schema_registry_url, source_prefix)
    target = KafkaSettings(base.bootstrap_servers, base.schema_registry_url, args.into)
    check_broker(base)
    names = [n.strip() for n in args.through.split(",") if n.strip()]
    services = build_services(names, args)
    republish = args.republish if args.republish is not None else not services
    why_not_native = None if args.parquet is None else "it reads Kafka ranges only, not --parquet"
    if why_not_native is None and args.engine != "python":
        from consumers.replay.native_engine import unsupported

        why_not_native = unsupported(topics, services, speed, republish)
    elif why_not_native is None:
        why_not_native = "--engine python"
    if args.engine == "native" and why_not_native:
        raise ConfigError(f"--engine native cannot run this replay: {why_not_native}")
    if args.parquet is not None:
        from consumers.replay.parquet_source import parquet_streams

        streams, total = parquet_streams(
            args.parquet,
            topics,
            parse_time(args.from_time, "--from") if args.from_time else None,
            parse_time(args.to_time, "--to") if args.to_time else None,
            source_prefix,
        )
        where = str(args.parquet)
    else:
        span = Range(
            from_ms=parse_time(args.from_time, "--from") if args.from_time else None,
            to_ms=parse_time(args.to_time, "--to") if args.to_time else None,
            from_offset=args.from_offset,
            to_offset=args.to_offset,
        )
        spans = plan(source, topics, span)
        total = sum(s.size for s in spans)
        where = ", ".join(t.name_with(source_prefix) for t in topics)
    if total == 0:
        raise ConfigError(f"nothing to replay: the range is empty in {where}")
    if not why_not_native:
        from consumers.replay.native_engine import NativeReplayer

        fast = NativeReplayer(target, services, default_progress())
        fast.prepare(topics, source)
        result = fast.run(source, spans, total)
    else:
        if args.parquet is None:
            serde = Serde(source.schema_registry_url, source.topic_prefix)
            streams = [read_span(source, serde, s) for s in spans if s.size]
        log.debug("Python replay engine: the native path does not apply (%s)", why_not_native)
        replayer = Replayer(target, services, republish, speed, default_progress())
        replayer.prepare(topics)
        result = replayer.run(merge(streams), total)
    summary = (
        f"replayed {result.records:,} records from {where} in {result.elapsed_s:.1f}s "
        f"({result.records / max(result.elapsed_s, 1e-9):,.0f}/s)"
        + (f", re-published under {args.into!r}" if republish else "")
        + (f", through {', '.join(names)} → {args.into!r}" if names else "")
    )
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
