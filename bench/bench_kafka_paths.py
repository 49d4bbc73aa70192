"""Benchmark: the Kafka read paths of the consumers, against a raw consume measured in the same run.

Fills a fresh topic prefix with `kraken.book` records (the real python-kraken-sdk capture looped with
resyncs) and `kraken.trade` records (synthetic), then measures on one core, records/s:
* `raw consume`: Consumer.consume() of the book topic, values untouched (the floor);
* `consume + decode`: plus Avro decode with the project's serde;
* `book from Kafka`: consume + decode + `BookKeeper` with a checksum check on every update (issue: book);
* `replay → book + bars`: `kracked replay --through book,bars --speed max` on both topics, merged in
  event-time order, outputs produced (issue: replay), against a raw consume of both topics: the path
  `kracked replay` takes for it, the native one (`consumers/replay/native_engine.py`);
* `replay, Python engine`: the same replay on the general engine (`--engine python`), from Kafka;
* `replay, pre-read`: the Python engine over records already read and decoded (the services, the merge
  and the producer alone: what the Kafka read costs is the difference).

Each figure is measured `--repeat` times (the machine may be shared and noisy) and printed as a range.
Needs a broker and registry: `KRACKED_BOOTSTRAP_SERVERS`/`KRACKED_SCHEMA_REGISTRY_URL` or a running
`kracked stack up`. Usage: `python bench/bench_kafka_paths.py [--books 200000] [--trades 100000] [--repeat 3]`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from confluent_kafka import Consumer, Message, TopicPartition  # noqa: E402

from bench.bench_book import sdk_records  # noqa: E402
from consumers.book.domain import BookKeeper, Verdict  # noqa: E402
from consumers.replay.domain import ReplayItem, merge  # noqa: E402
from consumers.replay.engine import Replayer  # noqa: E402
from consumers.replay.native_engine import NativeReplayer  # noqa: E402
from consumers.replay.source import Range, plan, read_span  # noqa: E402
from kracked.kafka import consumer_config, ensure_topics, make_producer  # noqa: E402
from kracked.settings import KafkaSettings  # noqa: E402
from schemas.serde import Serde  # noqa: E402
from schemas.topics import Topic  # noqa: E402
from tests.unit.test_bars_domain import synthetic_trades  # noqa: E402

REPLAY_TARGET = 300_000
BOOK_TARGET = 200_000


def fill(settings: KafkaSettings, books: int, trades: int) -> None:
    serde = Serde(settings.schema_registry_url, settings.topic_prefix)
    ensure_topics(
        settings, [Topic.BOOK.name_with(settings.topic_prefix), Topic.TRADE.name_with(settings.topic_prefix)]
    )
    producer = make_producer(settings)
    for topic, records in ((Topic.BOOK, sdk_records(books)), (Topic.TRADE, synthetic_trades(trades, seed=5))):
        name = topic.name_with(settings.topic_prefix)
        for i, record in enumerate(records):
            if topic is Topic.BOOK:
                record["ts_recv"] = 1_700_000_000_000_000 + i
            value = serde.encode(topic, record)
            while True:
                try:
                    producer.produce(name, value=value, key=record["symbol"].encode())
                    break
                except BufferError:
                    producer.poll(0.1)
    producer.flush(120)


def consume(
    settings: KafkaSettings, topics: list[Topic], handle: Callable[[list[Message]], None] | None = None
) -> tuple[int, float]:
    """Read the topics from the start to their end; returns (records, seconds)."""
    consumer = Consumer(
        consumer_config(settings, f"bench-{uuid.uuid4().hex[:6]}", **{"fetch.max.bytes": 104857600})
    )
    ends = {}
    parts = []
    for topic in topics:
        name = topic.name_with(settings.topic_prefix)
        _low, high = consumer.get_watermark_offsets(TopicPartition(name, 0), timeout=10)
        ends[name] = high
        parts.append(TopicPartition(name, 0, 0))
    consumer.assign(parts)
    total = sum(ends.values())
    n = 0
    start = time.perf_counter()
    while n < total:
        # never ask for more than is left: a short last batch would wait out the whole timeout
        batch = consumer.consume(min(10_000, total - n), 1.0)
        if handle is not None:
            handle(batch)
        n += len(batch)
    seconds = time.perf_counter() - start
    consumer.close()
    return n, seconds


def span(rates: list[float]) -> str:
    """`lo – hi` of the runs' rates (one figure when run once)."""
    lo, hi = min(rates), max(rates)
    return f"{hi:>10,.0f}" if len(rates) == 1 else f"{lo:>10,.0f} – {hi:,.0f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--books", type=int, default=200_000)
    parser.add_argument("--trades", type=int, default=100_000)
    parser.add_argument(
        "--book-cadence-ms",
        type=int,
        default=0,
        help="replay: book top at most every N ms (0 = every change)",
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs per figure (printed as a range)")
    parser.add_argument(
        "--cpu", type=int, default=max(os.sched_getaffinity(0)), help="the one core measured runs use"
    )
    args = parser.parse_args(argv)
    runs = range(max(1, args.repeat))
    base = KafkaSettings.from_env()
    settings = KafkaSettings(
        base.bootstrap_servers, base.schema_registry_url, f"bench{uuid.uuid4().hex[:6]}."
    )
    t0 = time.perf_counter()
    fill(settings, args.books, args.trades)
    print(
        f"filled {args.books:,} book + {args.trades:,} trade records under {settings.topic_prefix} in {time.perf_counter() - t0:.1f}s"
    )
    # one core for everything measured: this thread, and the librdkafka threads of every consumer and
    # producer created from here on (they inherit the affinity); the broker runs elsewhere
    os.sched_setaffinity(0, {args.cpu})
    print(f"measuring on cpu {args.cpu}")

    raw = [rate(consume(settings, [Topic.BOOK])) for _ in runs]
    print(f"raw consume          {span(raw)} records/s")
    serde = Serde(settings.schema_registry_url, settings.topic_prefix)
    codec = serde.codec(Topic.BOOK)

    def decode(batch: list[Message]) -> None:
        decode = codec.decode
        for msg in batch:
            decode(msg.value())

    dec = [rate(consume(settings, [Topic.BOOK], decode)) for _ in runs]
    print(f"consume + decode     {span(dec)} records/s   (ratio to raw consume {max(dec) / max(raw):.2f})")
    verified = [0]

    def book_run() -> float:
        keeper = BookKeeper()
        verified[0] = 0

        def book(batch: list[Message]) -> None:
            process, decode = keeper.process, codec.decode
            ok = 0
            for msg in batch:
                if process(decode(msg.value())).verdict is Verdict.OK:
                    ok += 1
            verified[0] += ok

        return rate(consume(settings, [Topic.BOOK], book))

    bk = [book_run() for _ in runs]
    print(
        f"book from Kafka      {span(bk)} updates/s   ({verified[0]:,} verified; ratio to consume+decode "
        f"{max(bk) / max(dec):.2f}, to raw consume {max(bk) / max(raw):.2f}); "
        f"target {BOOK_TARGET:,}/s from memory: see bench_book.py"
    )

    raw2 = [rate(consume(settings, [Topic.BOOK, Topic.TRADE])) for _ in runs]
    print(f"raw consume (both)   {span(raw2)} records/s")
    spans = plan(settings, [Topic.BOOK, Topic.TRADE], Range())
    total = sum(s.size for s in spans)
    natives = [native_replay(base, settings, f"nat{i}.", total, args.book_cadence_ms) for i in runs]
    print(
        f"replay → book + bars {span(natives)} events/s   (ratio to raw consume {max(natives) / max(raw2):.2f}); "
        f"target {REPLAY_TARGET:,}/s: {'met' if max(natives) >= REPLAY_TARGET else 'MISSED'}"
    )
    replays = [
        replay(
            base,
            settings,
            f"out{i}.",
            merge([read_span(settings, serde, s) for s in spans]),
            total,
            args.book_cadence_ms,
        )
        for i in runs
    ]
    print(
        f"replay, Python engine {span(replays)} events/s   (ratio to raw consume {max(replays) / max(raw2):.2f})"
    )
    items = list(merge([read_span(settings, serde, s) for s in spans]))
    pre = [replay(base, settings, f"pre{i}.", iter(items), total, args.book_cadence_ms) for i in runs]
    print(
        f"replay, pre-read     {span(pre)} events/s   (Python engine: services + merge + produce, no Kafka read)"
    )
    return 0


def rate(result: tuple[int, float]) -> float:
    n, seconds = result
    return n / seconds


def services(cadence_ms: int) -> list[Any]:
    """The services of `replay --through book,bars --bars-intervals 1m,5m --bars-grace-ms 0`."""
    from consumers.bars.service import BarsService
    from consumers.book.service import BookService

    return [BookService(cadence_ms=cadence_ms), BarsService((60, 300), 0)]


def native_replay(
    base: KafkaSettings, settings: KafkaSettings, out: str, total: int, cadence_ms: int
) -> float:
    """One `replay --through book,bars --speed max` as `kracked replay` runs it (the native path, reading
    Kafka itself) into `<prefix><out>`; events/s."""
    target = KafkaSettings(base.bootstrap_servers, base.schema_registry_url, settings.topic_prefix + out)
    replayer = NativeReplayer(target, services(cadence_ms))
    replayer.prepare([Topic.BOOK, Topic.TRADE], settings)
    spans = plan(settings, [Topic.BOOK, Topic.TRADE], Range())
    result = replayer.run(settings, spans, total)
    assert result.records == total, f"replayed {result.records} of {total}"
    return result.records / result.elapsed_s


def replay(
    base: KafkaSettings,
    settings: KafkaSettings,
    out: str,
    items: Iterator[ReplayItem],
    total: int,
    cadence_ms: int = 0,
) -> float:
    """One `replay --through book,bars --speed max --engine python` into `<prefix><out>`; events/s."""
    target = KafkaSettings(base.bootstrap_servers, base.schema_registry_url, settings.topic_prefix + out)
    replayer = Replayer(target, services(cadence_ms), republish=False, speed=None)
    replayer.prepare([Topic.BOOK, Topic.TRADE])
    result = replayer.run(items, total)
    return result.records / result.elapsed_s


if __name__ == "__main__":
    raise SystemExit(main())
