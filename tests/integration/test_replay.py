"""`kracked replay`: a topic range through book and bars in-process, twice → byte-identical outputs,
equal to what the live services produced on the same input; republishing keeps keys, order and times;
clear errors for an empty range or an unknown topic."""

from __future__ import annotations

import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from consumers.bars.service import BarsService
from consumers.book.service import BookService
from kracked.kafka import consumer_config
from schemas.topics import Topic
from tests.integration.conftest import KafkaTest, with_prefix
from tests.integration.helpers import ServiceThread, end_offsets, produce, read_all, read_all_with_keys
from tests.unit.test_bars_domain import synthetic_trades
from tests.unit.test_book_domain import sdk_records

REPO = Path(__file__).resolve().parents[2]


def replay(kafka: KafkaTest, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kracked.cli", "replay", *args],
        capture_output=True,
        text=True,
        env=kafka.env_vars(),
        timeout=300,
        check=False,
        cwd=REPO,
    )


def raw_values(kafka: KafkaTest, topic: Topic) -> list[bytes]:
    name = kafka.topic(topic)
    ends = end_offsets(kafka, topic)
    consumer = Consumer(consumer_config(kafka.settings, kafka.group("raw")))
    consumer.assign([TopicPartition(name, p, 0) for p in ends])
    out: list[bytes] = []
    try:
        while len(out) < sum(ends.values()):
            batch = consumer.consume(1000, 2.0)
            if not batch:
                break
            out += [m.value()[5:] for m in batch if m.error() is None]  # body without the schema id header
    finally:
        consumer.close()
    return out


def book_records() -> list[dict[str, Any]]:
    """The real SDK capture as kraken.book records, one ms apart."""
    books = sdk_records(epoch=1)
    for i, record in enumerate(books):
        record["ts_recv"] = 1_700_000_000_000_000 + i * 1000
    return books


def test_replay_twice_is_byte_identical_and_equals_live(kafka: KafkaTest) -> None:
    kafka.create_topics(
        Topic.BOOK, Topic.LEVEL3, Topic.TRADE, Topic.BOOK_TOP, Topic.BARS, Topic.CONTINUITY, Topic.DEADLETTER
    )
    books = book_records()
    produce(kafka, Topic.BOOK, books)
    produce(kafka, Topic.TRADE, synthetic_trades(1500, seed=11))

    ServiceThread(BookService(), kafka, stop_when_idle_s=3.0).start().wait_idle()
    ServiceThread(
        BarsService((60, 300), grace_ms=0, settings=kafka.settings), kafka, stop_when_idle_s=3.0
    ).start().wait_idle()
    live_tops = read_all(kafka, Topic.BOOK_TOP)
    live_bars = read_all(kafka, Topic.BARS)

    first, second = with_prefix(kafka, kafka.prefix + "r1."), with_prefix(kafka, kafka.prefix + "r2.")
    for target in (first, second):
        proc = replay(
            kafka,
            "--topics",
            "kraken.book,kraken.trade",
            "--through",
            "book,bars",
            "--into",
            target.prefix,
            "--bars-intervals",
            "1m,5m",
            "--bars-grace-ms",
            "0",
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith(f"replayed {len(books) + 1500:,} records from ")

    for topic in (Topic.BOOK_TOP, Topic.BARS):
        assert raw_values(first, topic) == raw_values(second, topic)  # byte-identical
    assert read_all(first, Topic.BOOK_TOP) == live_tops
    key = lambda b: (b["symbol"], b["interval_s"], b["start"])  # noqa: E731
    assert sorted(read_all(first, Topic.BARS), key=key) == sorted(live_bars, key=key)


def test_native_and_python_engines_give_byte_identical_outputs(kafka: KafkaTest) -> None:
    kafka.create_topics(
        Topic.BOOK, Topic.TRADE, Topic.BOOK_TOP, Topic.BARS, Topic.CONTINUITY, Topic.DEADLETTER
    )
    books = book_records()
    books.append({**books[5], "checksum": books[5]["checksum"] ^ 1})  # a mismatch: continuity + invalid top
    produce(kafka, Topic.BOOK, books)
    produce(kafka, Topic.TRADE, synthetic_trades(1500, seed=11))
    targets = {engine: with_prefix(kafka, f"{kafka.prefix}{engine}.") for engine in ("native", "python")}
    for engine, target in targets.items():
        proc = replay(
            kafka,
            "--topics",
            "kraken.book,kraken.trade",
            "--through",
            "book,bars",
            "--into",
            target.prefix,
            "--bars-intervals",
            "1m,5m",
            "--book-cadence-ms",
            "50",
            "--engine",
            engine,
        )
        assert proc.returncode == 0, proc.stderr
    for topic in (Topic.BOOK_TOP, Topic.BARS, Topic.CONTINUITY):
        native, python = raw_values(targets["native"], topic), raw_values(targets["python"], topic)
        assert native == python and native, topic
    refused = replay(kafka, "--topics", "kraken.trade", "--engine", "native", "--speed", "2", "--into", "x.")
    assert refused.returncode == 2 and "max speed" in refused.stderr


def test_republish_keeps_keys_order_and_timestamps_and_errors_are_clear(kafka: KafkaTest) -> None:
    kafka.create_topics(Topic.TRADE, Topic.DEADLETTER)
    trades = synthetic_trades(300, seed=5)
    produce(kafka, Topic.TRADE, trades)
    target = with_prefix(kafka, kafka.prefix + "bt.")
    proc = replay(
        kafka, "--topics", "kraken.trade", "--into", target.prefix, "--from-offset", "100", "--speed", "max"
    )
    assert proc.returncode == 0, proc.stderr
    source = read_all_with_keys(kafka, Topic.TRADE)[100:]
    copied = read_all_with_keys(target, Topic.TRADE)
    assert [(k, r) for k, r, _o in copied] == [(k, r) for k, r, _o in source]

    empty = replay(kafka, "--topics", "kraken.trade", "--into", target.prefix, "--from-offset", "10000")
    assert empty.returncode == 2 and "nothing to replay" in empty.stderr and empty.stderr.count("\n") == 1
    unknown = replay(kafka, "--topics", "kraken.nope", "--into", target.prefix)
    assert unknown.returncode == 2 and "unknown topic 'kraken.nope'" in unknown.stderr
    missing = replay(kafka, "--topics", "kraken.ohlc", "--into", target.prefix)
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    env_check = os.environ.get("KRACKED_TOPIC_PREFIX")
    assert env_check is None or env_check != kafka.prefix


def test_replay_from_the_parquet_archive_gives_the_same_bars(kafka: KafkaTest, tmp_path: Path) -> None:
    kafka.create_topics(Topic.TRADE, Topic.BARS, Topic.DEADLETTER)
    produce(kafka, Topic.TRADE, synthetic_trades(2000, seed=17))
    from consumers.parquet.service import ParquetService

    ServiceThread(
        ParquetService(tmp_path / "ds", (Topic.TRADE,), kafka.prefix), kafka, stop_when_idle_s=3.0
    ).start().wait_idle()
    from_kafka, from_parquet = (
        with_prefix(kafka, kafka.prefix + "k."),
        with_prefix(kafka, kafka.prefix + "p."),
    )
    args = (
        "--topics",
        "kraken.trade",
        "--through",
        "bars",
        "--bars-intervals",
        "1m,5m",
        "--bars-grace-ms",
        "0",
    )
    assert replay(kafka, *args, "--into", from_kafka.prefix).returncode == 0
    proc = replay(kafka, *args, "--into", from_parquet.prefix, "--parquet", str(tmp_path / "ds"))
    assert proc.returncode == 0, proc.stderr
    assert "replayed 2,000 records from" in proc.stdout
    money = {"open", "high", "low", "close", "volume", "buy_volume", "sell_volume", "vwap"}

    def values(bar: dict[str, Any]) -> dict[str, Any]:
        # the archive keeps values, not Kafka offsets nor the text's trailing zeros
        return {
            k: Decimal(v) if k in money else v
            for k, v in bar.items()
            if k not in ("first_offset", "last_offset")
        }

    def bars(k: KafkaTest) -> list[dict[str, Any]]:
        return sorted(
            (values(b) for b in read_all(k, Topic.BARS)),
            key=lambda b: (b["symbol"], b["interval_s"], b["start"]),
        )

    assert bars(from_parquet) == bars(from_kafka)
    (tmp_path / "empty").mkdir()
    bad = replay(kafka, "--topics", "kraken.trade", "--parquet", str(tmp_path / "empty"), "--into", "x.")
    assert bad.returncode == 2 and "is not a kracked Parquet dataset" in bad.stderr
