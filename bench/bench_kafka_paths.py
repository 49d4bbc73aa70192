"""Benchmark: the Kafka read paths of the consumers, against a raw consume measured in the same run.

Fills a fresh topic prefix with `kraken.book` records (the real python-kraken-sdk capture looped with
resyncs) and `kraken.trade` records (synthetic), then measures on one core, records/s:
* `raw consume`: Consumer.consume() of the book topic, values untouched (the floor);
* `consume + decode`: plus Avro decode with the project's serde;
* `book from Kafka`: consume + decode + `BookKeeper` with a checksum check on every update (issue: book);
* `replay → book + bars`: `kracked replay --through book,bars --speed max` on both topics, merged in
  event-time order, outputs produced (issue: replay), against a raw consume of both topics.

Needs a broker and registry: `KRACKED_BOOTSTRAP_SERVERS`/`KRACKED_SCHEMA_REGISTRY_URL` or a running
`kracked stack up`. Usage: `python bench/bench_kafka_paths.py [--books 200000] [--trades 100000]`.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from confluent_kafka import Consumer, TopicPartition  # noqa: E402

from bench.bench_book import sdk_records  # noqa: E402
from consumers.book.domain import BookKeeper, Verdict  # noqa: E402
from consumers.replay.domain import merge  # noqa: E402
from consumers.replay.engine import Replayer  # noqa: E402
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


def consume(settings: KafkaSettings, topics: list[Topic], handle: object = None) -> tuple[int, float]:
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
        batch = consumer.consume(10_000, 1.0)
        if handle is not None:
            handle(batch)  # type: ignore[operator]
        n += len(batch)
    seconds = time.perf_counter() - start
    consumer.close()
    return n, seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--books", type=int, default=200_000)
    parser.add_argument("--trades", type=int, default=100_000)
    args = parser.parse_args(argv)
    base = KafkaSettings.from_env()
    settings = KafkaSettings(
        base.bootstrap_servers, base.schema_registry_url, f"bench{uuid.uuid4().hex[:6]}."
    )
    t0 = time.perf_counter()
    fill(settings, args.books, args.trades)
    print(
        f"filled {args.books:,} book + {args.trades:,} trade records under {settings.topic_prefix} in {time.perf_counter() - t0:.1f}s"
    )

    n, raw = consume(settings, [Topic.BOOK])
    print(f"raw consume          {n / raw:>10,.0f} records/s")
    serde = Serde(settings.schema_registry_url, settings.topic_prefix)
    codec = serde.codec(Topic.BOOK)

    def decode(batch: list) -> None:  # type: ignore[type-arg]
        for msg in batch:
            codec.decode(msg.value())

    n, dec = consume(settings, [Topic.BOOK], decode)
    print(f"consume + decode     {n / dec:>10,.0f} records/s   ({raw / dec:.2f}× the raw consume time)")
    keeper = BookKeeper()
    verified = [0]

    def book(batch: list) -> None:  # type: ignore[type-arg]
        process = keeper.process
        for msg in batch:
            if process(codec.decode(msg.value())).verdict is Verdict.OK:
                verified[0] += 1

    n, bk = consume(settings, [Topic.BOOK], book)
    print(
        f"book from Kafka      {n / bk:>10,.0f} updates/s   ({verified[0]:,} verified; ratio to consume+decode "
        f"{dec / bk:.2f}, to raw consume {raw / bk:.2f}); target {BOOK_TARGET:,}/s from memory: see bench_book.py"
    )

    n2, raw2 = consume(settings, [Topic.BOOK, Topic.TRADE])
    from consumers.bars.service import BarsService
    from consumers.book.service import BookService

    spans = plan(settings, [Topic.BOOK, Topic.TRADE], Range())
    target = KafkaSettings(base.bootstrap_servers, base.schema_registry_url, settings.topic_prefix + "out.")
    replayer = Replayer(target, [BookService(), BarsService((60, 300), 0)], republish=False, speed=None)
    replayer.prepare([Topic.BOOK, Topic.TRADE])
    result = replayer.run(merge([read_span(settings, serde, s) for s in spans]), n2)
    rate = result.records / result.elapsed_s
    print(f"raw consume (both)   {n2 / raw2:>10,.0f} records/s")
    print(
        f"replay → book + bars {rate:>10,.0f} events/s   (ratio to raw consume {rate / (n2 / raw2):.2f}); "
        f"target {REPLAY_TARGET:,}/s: {'met' if rate >= REPLAY_TARGET else 'MISSED'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
