"""The connector's native book path (`kracked_native.L2Verifier.feed`) against the Python reference.

The Python path parses the frame (`connector.kraken.messages.parse`), verifies it with the pure-Python
`BookVerifier("book")`, builds the record (`connector.mapping.book_record`) and encodes it with the
generated Avro writer. The native path must give the same verdict, epoch and checksum, and
byte-identical `kraken.book` values, on every captured book frame and on random books with every
rule in play (deletes, unknown deletes, truncation, a price twice in a message, numbers as strings,
exponents, trailing zeros, wrong checksums, values beyond the precision). Frames it does not take
whole must come back as None, and the Python path's `verify` must act on the same books.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

import pytest

from connector.integrity import BookVerifier, L2Book, NativeBookVerifier, Precision
from connector.kraken import messages as m
from connector.mapping import book_record
from schemas.avro_writer import compile_writer
from schemas.checksum import fixed_to_text
from schemas.serde import parsed_schema
from schemas.topics import Topic
from tests.conftest import KRAKEN_CAPTURES

HEADER = b"\x00\x00\x00\x01\x2a"
WRITE = compile_writer(parsed_schema(Topic.BOOK), HEADER)
Taken = tuple[str, bytes, bool | None, int | None, int]


def feed(native: NativeBookVerifier, raw: str | bytes, ts: int) -> Taken | None:
    """`feed` plus the verdict's epoch and computed checksum (what `python_path` returns)."""
    taken = native.feed(raw, ts)
    if taken is None:
        return None
    v = native.last()
    assert v is not None and v.ok is taken[2]
    return (*taken, v.computed, v.epoch)


def render(value: Any) -> str:
    """JSON text of a value decoded with `Num` numbers, numbers kept exactly as their text."""
    if isinstance(value, m.Num):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{render(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(render(v) for v in value) + "]"
    return json.dumps(value)


def python_path(verifier: BookVerifier, raw: str, ts: int, precisions: dict[str, Precision]) -> Taken | None:
    msg = m.parse(raw)
    if not isinstance(msg, m.BookMessage):
        return None
    v = verifier.verify(
        msg.symbol, msg.type == "snapshot", msg.bids, msg.asks, msg.checksum, ts, precisions.get(msg.symbol)
    )
    return msg.symbol, WRITE(book_record(msg, verifier.depth, v, ts)), v.ok, v.computed, v.epoch


def native_verifier(depth: int, precisions: dict[str, Precision]) -> NativeBookVerifier:
    native = NativeBookVerifier(depth, HEADER)
    for symbol, p in precisions.items():
        native.set_precision(symbol, p)
    return native


def captured_frames() -> Iterator[str]:
    for name in ("crypto-tracker_btc-eth_book-trade.jsonl", "tickvault_btc_book.jsonl"):
        yield from (line for line in (KRAKEN_CAPTURES / name).read_text().splitlines() if line.strip())
    for name in ("cryptonorm_book_snapshot.json", "cryptonorm_book_update.json", "cryptonorm_trade.json"):
        yield (KRAKEN_CAPTURES / name).read_text()
    decode = json.JSONDecoder(parse_float=m.Num, parse_int=m.Num).decode
    doc = decode((KRAKEN_CAPTURES / "python-kraken-sdk_orderbook-v2.json").read_text())
    for obj in [doc["init"], *doc["updates"]]:
        yield render(obj)


def instrument_precisions() -> dict[str, Precision]:
    doc = json.loads((KRAKEN_CAPTURES / "instrument_snapshot_683_pairs.json").read_text())
    return {p["symbol"]: Precision(p["price_precision"], p["qty_precision"]) for p in doc["data"]["pairs"]}


@pytest.mark.parametrize("with_instruments", [True, False], ids=["instrument-precision", "inferred"])
def test_every_captured_frame_gives_the_python_verdict_and_bytes(with_instruments: bool) -> None:
    precisions = instrument_precisions() if with_instruments else {}
    reference = BookVerifier("book", 10)
    native = native_verifier(10, precisions)
    books = verified = 0
    for ts, raw in enumerate(captured_frames(), start=1_785_000_000_000_000):
        expected = python_path(reference, raw, ts, precisions)
        got = feed(native, raw, ts)
        assert got == expected, raw[:120]
        if got is not None:
            books += 1
            verified += got[2] is True
    assert books >= 660
    # every captured checksum verifies (inferred precision: all but the float-mangled sdk capture)
    assert verified == books if with_instruments else verified >= 150


def test_the_sdk_bad_update_is_a_mismatch_natively_too() -> None:
    native = native_verifier(10, {"BTC/USD": Precision(1, 8)})
    decode = json.JSONDecoder(parse_float=m.Num, parse_int=m.Num).decode
    doc = decode((KRAKEN_CAPTURES / "python-kraken-sdk_orderbook-v2.json").read_text())
    for ts, obj in enumerate([doc["init"], *doc["updates"]]):
        taken = feed(native, render(obj), ts)
        assert taken is not None and taken[2] is True
    bad = (
        '{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","bids":[{"price":29430.3,'
        '"qty":1.69289565}],"asks":[],"checksum":2438868880,"timestamp":"2023-07-30T15:30:49.008834Z"}]}'
    )
    taken = feed(native, bad, 999)
    assert taken is not None
    symbol, value, ok, computed, epoch = taken
    assert (symbol, ok, epoch) == ("BTC/USD", False, 1) and computed not in (None, 2438868880)
    assert value.startswith(HEADER) and not native.valid("BTC/USD")


# ------------------------------------------------------------------------------------------ random books


def _text(rng: random.Random, value: int, precision: int) -> str:
    """A decimal text of a fixed-point value in one of the spellings Kraken (or a float) may use."""
    digits = str(value).rjust(precision + 1, "0")
    plain = digits if precision == 0 else f"{digits[:-precision]}.{digits[-precision:]}"
    style = rng.random()
    if style < 0.15 and "." in plain:
        return plain.rstrip("0").rstrip(".") or "0"  # float-style: trailing zeros gone
    if style < 0.2:
        return plain + "000"  # more zeros than the precision: allowed
    if style < 0.25 and value:
        return f"{value}e-{precision}"  # exponent
    return plain


def _number(rng: random.Random, text: str) -> str:
    return json.dumps(text) if rng.random() < 0.1 else text  # sometimes a JSON string


def random_frames(seed: int, count: int) -> Iterator[tuple[str, int]]:
    """Frames of two symbols with correct checksums (from the reference book), mostly."""
    rng = random.Random(seed)
    depth = 10
    precisions = {"AAA/USD": Precision(2, 8), "BBB/EUR": Precision(5, 4)}
    books: dict[str, L2Book] = {}
    for i in range(count):
        symbol = rng.choice(list(precisions))
        p = precisions[symbol]
        snapshot = symbol not in books or rng.random() < 0.03
        if snapshot:
            books[symbol] = L2Book(depth, p)
        mid = 5_000 * 10**p.price
        n = depth if snapshot else rng.randint(0, 4)
        bids, asks = [], []
        for side, sign in ((bids, -1), (asks, 1)):
            for _ in range(n if snapshot else rng.randint(0, n)):
                price = mid + sign * rng.randint(1, 30) * 10 ** max(0, p.price - 1)
                qty = 0 if (not snapshot and rng.random() < 0.3) else rng.randint(1, 10**9)
                pt, qt = _text(rng, price, p.price), _text(rng, qty, p.qty)
                if not snapshot and rng.random() < 0.01:
                    pt = fixed_to_text(price, p.price) + ("7" if p.price else ".7")  # beyond the precision
                side.append((pt, qt))
        book = books[symbol]
        try:
            book.apply([{"price": a, "qty": b} for a, b in bids], [{"price": a, "qty": b} for a, b in asks])
            checksum = book.checksum()
        except ValueError:
            del books[symbol]
            checksum = rng.randint(0, 2**32 - 1)
        if rng.random() < 0.02:
            checksum ^= 1  # a wrong checksum
        if not snapshot and rng.random() < 0.02:
            books.pop(symbol, None)
        levels = {
            k: "[" + ",".join(f'{{"price":{_number(rng, a)},"qty":{_number(rng, b)}}}' for a, b in side) + "]"
            for k, side in (("bids", bids), ("asks", asks))
        }
        ts = ""
        if rng.random() < 0.9:
            frac = str(rng.randint(0, 999_999_999)).rjust(9, "0")[: rng.randint(1, 9)]
            ts = f',"timestamp":"2026-11-{rng.randint(1, 30):02d}T{rng.randint(0, 23):02d}:13:59.{frac}Z"'
        kind = "snapshot" if snapshot else "update"
        body = (
            f'"symbol":"{symbol}","bids":{levels["bids"]},"asks":{levels["asks"]},"checksum":{checksum}{ts}'
        )
        yield f'{{"channel":"book","type":"{kind}","data":[{{{body}}}]}}', 1_790_000_000_000_000 + i


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("with_instruments", [True, False], ids=["instrument-precision", "inferred"])
def test_random_books_agree_with_the_reference(seed: int, with_instruments: bool) -> None:
    precisions = {"AAA/USD": Precision(2, 8), "BBB/EUR": Precision(5, 4)} if with_instruments else {}
    reference = BookVerifier("book", 10)
    native = native_verifier(10, precisions)
    verdicts: dict[bool | None, int] = {}
    for raw, ts in random_frames(seed, 3_000):
        expected = python_path(reference, raw, ts, precisions)
        assert feed(native, raw, ts) == expected, raw
        assert expected is not None
        verdicts[expected[2]] = verdicts.get(expected[2], 0) + 1
    # the run exercised verified books, and (with real precisions) mismatches and unverifiable books;
    # an inferred precision is often wrong for random text (float-style spellings): unverified, never false
    if with_instruments:
        assert verdicts.get(True, 0) > 1_000
        assert verdicts.get(False, 0) > 10 and verdicts.get(None, 0) > 10
    else:
        assert verdicts.get(True, 0) > 100 and verdicts.get(None, 0) > 100 and False not in verdicts


# ------------------------------------------------------------------------------------------ refusals


SNAPSHOT = (
    '{"channel":"book","type":"snapshot","data":[{"symbol":"X/Y","bids":[{"price":1.5,"qty":2}],'
    '"asks":[{"price":1.6,"qty":3}],"checksum":%d,"timestamp":"2026-11-24T10:00:00.000001Z"}]}'
)


@pytest.mark.parametrize(
    "raw",
    [
        '{"channel":"heartbeat"}',
        '{"channel":"status","type":"update","data":[{"system":"online"}]}',
        '{"method":"pong","req_id":1}',
        '{"channel":"trade","type":"update","data":[]}',
        '{"channel":"book","type":"update","data":[{"symbol":"X/Y"',
        '{"channel":"book","type":"delta","data":[{"symbol":"X/Y","checksum":1}]}',
        '{"channel":"book","type":"update","data":[]}',
        '{"channel":"book","type":"update","data":[{"symbol":"X/Y","checksum":1},{"symbol":"Z/Y","checksum":1}]}',
        '{"channel":"book","type":"update","data":[{"symbol":"X/Y","checksum":1.5}]}',
        '{"channel":"book","type":"update","data":[{"symbol":"X/Y","bids":[{"price":true,"qty":1}],"checksum":1}]}',
        '{"channel":"book","type":"update","data":[{"symbol":"X/Y","checksum":1,"timestamp":"2026-11-24T10:00:00+00:00"}]}',
        b'{"channel":"book","type":"update","data":[{"symbol":"X/Y","checksum":1}]}',
    ],
)
def test_frames_it_does_not_take_whole_come_back_as_none(raw: str | bytes) -> None:
    native = native_verifier(10, {})
    assert feed(native, raw, 1) is None


def test_the_python_path_acts_on_the_same_books() -> None:
    """A frame the native path leaves to Python (an offset timestamp) updates the same book."""
    native = native_verifier(10, {"X/Y": Precision(1, 0)})
    ref = L2Book(10, Precision(1, 0))
    ref.apply([{"price": "1.5", "qty": "2"}], [{"price": "1.6", "qty": "3"}])
    first = feed(native, SNAPSHOT % ref.checksum(), 10)
    assert first is not None and first[2] is True and first[4] == 10
    ref.apply([{"price": "1.4", "qty": "5"}], [])
    update = (
        '{"channel":"book","type":"update","data":[{"symbol":"X/Y","bids":[{"price":1.4,"qty":5}],'
        f'"asks":[],"checksum":{ref.checksum()},"timestamp":"2026-11-24T10:00:01+00:00"}}]}}'
    )
    assert feed(native, update, 11) is None
    msg = m.parse(update)
    assert isinstance(msg, m.BookMessage)
    v = native.verify(msg.symbol, False, msg.bids, msg.asks, msg.checksum, 11, None)
    assert v.ok is True and v.epoch == 10
    ref.apply([], [{"price": "1.6", "qty": "0"}])
    last = (
        '{"channel":"book","type":"update","data":[{"symbol":"X/Y","bids":[],"asks":[{"price":1.6,"qty":0}],'
        f'"checksum":{ref.checksum()},"timestamp":"2026-11-24T10:00:02Z"}}]}}'
    )
    taken = feed(native, last, 12)
    assert taken is not None and taken[2] is True
    native.invalidate("X/Y")
    after = feed(native, last, 13)
    assert after is not None and after[2] is None and not native.valid("X/Y")


@pytest.mark.parametrize("qty", ['"."', '"12."', '".5"', "-0", "0e0", '"1.50000000000"', '"1.5e0"', '"٣"'])
def test_odd_decimal_spellings_get_the_reference_verdict(qty: str) -> None:
    """Spellings the reference reads (or refuses) in its own way: the native path agrees on each."""
    precisions = {"X/Y": Precision(1, 2)}
    reference = BookVerifier("book", 10)
    native = native_verifier(10, precisions)
    ref = L2Book(10, Precision(1, 2))
    ref.apply([{"price": "1.5", "qty": "2"}], [{"price": "1.6", "qty": "3"}])
    for ts, raw in enumerate(
        [
            SNAPSHOT % ref.checksum(),
            '{"channel":"book","type":"update","data":[{"symbol":"X/Y","bids":[{"price":1.4,'
            f'"qty":{qty}}}],"asks":[],"checksum":{ref.checksum()}}}]}}',
        ]
    ):
        assert feed(native, raw, ts) == python_path(reference, raw, ts, precisions), raw
