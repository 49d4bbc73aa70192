"""The native replay path (`kracked_native.ReplayCore` via `NativeReplayer`) against the Python engine
(`Replayer` with the live `BookService` and `BarsService`) on the same consumed messages: every
`kracked.book.top`, `kracked.bars` and `kracked.continuity` value must be byte-identical, in the same
order. Inputs: the real python-kraken-sdk capture, random books of several depths with checksums
computed by the Python `L2Book`, corrupted records of every verdict, synthetic trades with
duplicates, late trades, exponent decimals and unknown sides, values of a foreign schema id and
unreadable values. No Kafka: messages, producer and registry are in-memory stand-ins."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

import pytest

from consumers.bars.service import BarsService
from consumers.book.domain import L2Book
from consumers.book.service import BookService
from consumers.replay.domain import merge
from consumers.replay.engine import Replayer
from consumers.replay.native_engine import NativeReplayer, unsupported
from consumers.replay.source import PartitionSpan, _decode_batch
from consumers.runtime import Service
from kracked.settings import KafkaSettings
from schemas.avro_writer import compile_writer
from schemas.serde import Serde, load_schema_text, parsed_schema
from schemas.topics import Topic
from tests.unit.test_bars_domain import T0, US, synthetic_trades, trade
from tests.unit.test_book_domain import sdk_records

pytest.importorskip("kracked_native")

SOURCE = KafkaSettings("unused:9092", "http://unused", "src.")
TARGET = KafkaSettings("unused:9092", "http://unused", "out.")
IDS = {
    "kraken.book": 11,
    "kraken.trade": 12,
    "kracked.book.top": 21,
    "kracked.bars": 22,
    "kracked.continuity": 23,
}
FOREIGN_BOOK_ID = 99  # an "older" writer of kraken.book (same fields): resolved through the registry
BATCH = 7  # small batches: the merge has to ask for the next batch of a stream many times


class Registry:
    """The registry calls `Codec` makes, in memory."""

    def register_schema(self, subject: str, schema: Any) -> int:
        return IDS[subject.removesuffix("-value").split(".", 1)[1]]

    def get_schema(self, schema_id: int) -> Any:
        if schema_id != FOREIGN_BOOK_ID:
            raise KeyError(schema_id)
        return type("S", (), {"schema_str": load_schema_text(Topic.BOOK)})()


class Msg:
    """What the replay reads of a confluent_kafka `Message`."""

    def __init__(self, offset: int, value: bytes | None) -> None:
        self._offset, self._value = offset, value

    def error(self) -> None:
        return None

    def offset(self) -> int:
        return self._offset

    def value(self) -> bytes | None:
        return self._value

    def key(self) -> bytes:
        return b"k"

    def timestamp(self) -> tuple[int, int]:
        return (1, 1_700_000_000_000)


class Producer:
    def __init__(self) -> None:
        self.out: dict[str, list[tuple[bytes | None, bytes]]] = {}

    def produce(self, topic: str, value: bytes, key: bytes | None = None, **_: Any) -> None:
        self.out.setdefault(topic, []).append((key, value))

    def poll(self, timeout: float) -> int:
        return 0

    def flush(self, timeout: float) -> int:
        return 0


def serde(settings: KafkaSettings) -> Serde:
    s = Serde(settings.schema_registry_url, settings.topic_prefix)
    s.registry = Registry()  # type: ignore[assignment]
    return s


def header(schema_id: int) -> bytes:
    return b"\x00" + schema_id.to_bytes(4, "big")


# -- inputs ----------------------------------------------------------------------------------------


def random_book(symbol: str, depth: int, n: int, seed: int, epoch: int = 1) -> list[dict[str, Any]]:
    """A snapshot and `n` updates with Kraken's checksum computed by the Python `L2Book`."""
    rng = random.Random(seed)
    book = L2Book(symbol, epoch, depth, 2, 4)

    def level(mid: int) -> dict[str, str]:
        price = mid + rng.randint(-30, 30)
        qty = rng.choice(
            ("0", "0.5", "1.2500", str(rng.randint(1, 9999)), f"{rng.randint(1, 99999) / 10**4:.4f}")
        )
        return {"price": f"{price / 100:.2f}", "qty": qty}

    def record(kind: str, bids: list[dict[str, str]], asks: list[dict[str, str]]) -> dict[str, Any]:
        if kind == "snapshot":
            book.apply_snapshot(bids, asks)
        else:
            book.apply_update(bids, asks)
        return {
            "symbol": symbol,
            "type": kind,
            "bids": bids,
            "asks": asks,
            "checksum": book.checksum(),
            "price_precision": 2,
            "qty_precision": 4,
            "depth": depth,
            "epoch": epoch,
            "checksum_ok": None,
            "ts_event": None,
            "ts_recv": 0,
        }

    snap_bids = [{"price": f"{(10000 - i * 3) / 100:.2f}", "qty": "1"} for i in range(depth)]
    snap_asks = [{"price": f"{(10010 + i * 3) / 100:.2f}", "qty": "2"} for i in range(depth)]
    records = [record("snapshot", snap_bids, snap_asks)]
    for _ in range(n):
        bids = [level(9990) for _ in range(rng.choice((0, 1, 1, 2, 3)))]
        asks = [level(10020) for _ in range(rng.choice((0, 1, 1, 2)))]
        records.append(record("update", bids, asks))
    return records


def book_inputs() -> list[dict[str, Any]]:
    """Every verdict and transition of the book service, interleaved over several symbols."""
    sdk = sdk_records(epoch=1)
    deep = random_book("ETH/USD", 25, 300, seed=3)
    shallow = random_book("DOT/USD", 3, 200, seed=4)
    again = random_book("ETH/USD", 25, 50, seed=5, epoch=2)  # a new snapshot: recovers ETH
    records = [*sdk[:200], *deep[:150], *shallow]
    bad = dict(deep[150], checksum=deep[150]["checksum"] ^ 1)  # mismatch: ETH invalid until `again`
    records += [bad, *deep[151:170]]  # invalid_book
    records.append({**sdk[200], "epoch": 7})  # epoch_mismatch: BTC invalid
    records += sdk[201:210]
    records.append({**sdk[0], "epoch": 1})  # BTC: the snapshot again → recovered
    records += sdk[1:150]
    records.append({**sdk[150], "asks": [{"price": "1.2.3", "qty": "1"}]})  # bad_record
    records.append({**sdk[0], "symbol": "XRP/USD", "type": "update"})  # waiting_for_snapshot
    records.append({**sdk[0], "symbol": "ADA/USD", "type": "teleport"})  # bad record type
    records.append({**sdk[0], "symbol": "SOL/USD", "checksum": 1})  # snapshot mismatch, never valid
    records.append({**sdk[0], "symbol": "LTC/USD", "bids": [{"price": "-1", "qty": "1"}]})  # bad snapshot
    records.append({**sdk[0], "symbol": "BAD/USD", "depth": 0})
    records += again
    for i, r in enumerate(records):
        r["ts_recv"] = T0 + i * 37_000
        r["ts_event"] = None if i % 3 else T0 + i * 37_000 - 500  # event time: ts_event, else ts_recv
    return records


def trade_inputs() -> list[dict[str, Any]]:
    trades = synthetic_trades(1500, seed=23, symbols=("BTC/USD", "ETH/USD", "DOGE/USD"))
    last = trades[-1]["ts_event"]
    trades.append(dict(trades[100]))  # a duplicate trade_id
    trades.append(trade(10**6, T0 + 5 * US, "300.0", "1", "buy"))  # late: its bars closed long ago
    trades.append(trade(10**6 + 1, last + 1, "30000.5", "1.5e-3", "sell"))  # exponent text
    trades.append(trade(10**6 + 2, last + 2, "30000.25", "0.00000001", "unknown"))  # neither side
    trades.append(trade(10**6 + 3, last + 3, "30001", "0", "buy"))  # zero qty
    return trades


def messages(topic: Topic, records: list[dict[str, Any]]) -> list[Msg]:
    write = compile_writer(parsed_schema(topic), header(IDS[topic.value]))
    foreign = compile_writer(parsed_schema(topic), header(FOREIGN_BOOK_ID))
    out = []
    for i, r in enumerate(records):
        value = write(r)
        if topic is Topic.BOOK and i % 97 == 5:
            value = foreign(r)  # written by another schema id: resolved, then replayed like the others
        out.append(Msg(i, value))
    if topic is Topic.BOOK:
        # unreadable values (skipped with a warning by both paths) at the end
        out += [Msg(len(out), value[:-3]), Msg(len(out) + 1, None), Msg(len(out) + 2, b"\x00\x00")]
    return out


def batches(msgs: list[Msg]) -> Iterator[list[Any]]:
    for i in range(0, len(msgs), BATCH):
        yield msgs[i : i + BATCH]


# -- the two engines ---------------------------------------------------------------------------------


def spans(book: list[Msg], trades: list[Msg]) -> list[PartitionSpan]:
    return [
        PartitionSpan(0, Topic.BOOK, Topic.BOOK.name_with(SOURCE.topic_prefix), 0, 0, len(book)),
        PartitionSpan(1, Topic.TRADE, Topic.TRADE.name_with(SOURCE.topic_prefix), 3, 0, len(trades)),
    ]


def python_engine(services: list[Service], book: list[Msg], trades: list[Msg]) -> dict[str, list[Any]]:
    producer = Producer()
    replayer = Replayer(TARGET, services, republish=False, speed=None, producer=producer)  # type: ignore[arg-type]
    replayer.serde.registry = Registry()  # type: ignore[assignment]
    source = serde(SOURCE)

    def read(span: PartitionSpan, msgs: list[Msg]) -> Iterator[Any]:
        for batch in batches(msgs):
            items, _done = _decode_batch(span, source, batch)  # type: ignore[arg-type]
            yield from items

    streams = [read(span, msgs) for span, msgs in zip(spans(book, trades), (book, trades), strict=True)]
    replayer.run(merge(streams), len(book) + len(trades))
    return producer.out


def native_engine(services: list[Service], book: list[Msg], trades: list[Msg]) -> dict[str, list[Any]]:
    producer = Producer()
    replayer = NativeReplayer(TARGET, services, producer=producer)  # type: ignore[arg-type]
    replayer.serde.registry = Registry()  # type: ignore[assignment]
    by_name = {
        Topic.BOOK.name_with(SOURCE.topic_prefix): book,
        Topic.TRADE.name_with(SOURCE.topic_prefix): trades,
    }
    result = replayer.run(
        SOURCE,
        spans(book, trades),
        len(book) + len(trades),
        batches=lambda _settings, span: batches(by_name[span.name]),
        source_serde=serde(SOURCE),
    )
    assert result.records == len(book) + len(trades) - 3  # the three unreadable values are skipped
    return producer.out


def decoded(out: dict[str, list[Any]], topic: Topic) -> list[dict[str, Any]]:
    codec = serde(TARGET).codec(topic)
    return [codec.decode(value) for _key, value in out.get(topic.name_with(TARGET.topic_prefix), [])]


# -- tests ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("top_n", "cadence_ms", "order"),
    [(10, 0, "book,bars"), (5, 0, "bars,book"), (10, 100, "book,bars"), (25, 1000, "book,bars")],
)
def test_native_replay_is_byte_identical_to_the_python_engine(
    top_n: int, cadence_ms: int, order: str
) -> None:
    book, trades = messages(Topic.BOOK, book_inputs()), messages(Topic.TRADE, trade_inputs())

    def services() -> list[Service]:
        made: dict[str, Service] = {
            "book": BookService(top_n=top_n, cadence_ms=cadence_ms),
            "bars": BarsService((60, 300, 3600), grace_ms=0),
        }
        return [made[name] for name in order.split(",")]

    expected = python_engine(services(), book, trades)
    got = native_engine(services(), book, trades)
    assert set(got) == set(expected)
    for name in expected:
        assert got[name] == expected[name], name  # same keys and values, byte for byte, same order

    # the inputs exercised what they are meant to
    tops = decoded(got, Topic.BOOK_TOP)
    events = [(c["symbol"], c["event"]) for c in decoded(got, Topic.CONTINUITY)]
    assert (
        len(tops) > (100 if cadence_ms == 0 else 10)
        and any(not t["valid"] for t in tops)
        and {t["symbol"] for t in tops} >= {"BTC/USD", "ETH/USD", "DOT/USD"}
    )
    assert {"snapshot_reset", "checksum_mismatch", "book_invalid"} <= {e for _s, e in events}
    assert ("ETH/USD", "checksum_mismatch") in events and ("SOL/USD", "checksum_mismatch") in events
    assert any(len(t["bids"]) == 3 for t in tops if t["symbol"] == "DOT/USD")
    bars = decoded(got, Topic.BARS)
    assert len(bars) > 50 and {b["interval_s"] for b in bars} == {60, 300, 3600}
    assert any(b["buy_volume"] != b["volume"] and b["sell_volume"] != b["volume"] for b in bars)


def test_a_bad_trade_stops_both_engines_with_the_same_error() -> None:
    trades = messages(Topic.TRADE, [trade(1, T0, "1.2.3", "1")])
    book = messages(Topic.BOOK, sdk_records()[:3])
    errors = []
    for engine in (python_engine, native_engine):
        with pytest.raises(ValueError) as info:
            engine([BarsService((60,), grace_ms=0)], book, trades)
        errors.append(str(info.value))
    assert errors[0] == errors[1] == "not a decimal: '1.2.3'"


def test_only_book_and_bars_over_book_and_trade_at_max_speed_go_native() -> None:
    book, bars = BookService(), BarsService((60,), 0)
    topics = [Topic.BOOK, Topic.TRADE]
    assert unsupported(topics, [book, bars], None, False) == ""
    assert "max speed" in unsupported(topics, [book], 2.0, False)
    assert "re-publish" in unsupported(topics, [book], None, True)
    assert "level3" in unsupported([Topic.BOOK, Topic.LEVEL3], [book], None, False)
    assert "kraken.ticker" in unsupported([Topic.TRADE, Topic.TICKER], [bars], None, False)
    from consumers.spread.service import SpreadService

    assert "spread" in unsupported(topics, [book, SpreadService("book.top", (60,), 0)], None, False)
    assert json.dumps(unsupported(topics, [], None, False))  # no services: the Python engine
