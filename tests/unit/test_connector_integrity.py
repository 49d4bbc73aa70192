"""connector.integrity: Kraken's checksums on every real vector, book rules, epochs, trade-id gaps."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from connector.integrity import (
    BookVerifier,
    EpochClock,
    L2Book,
    L3Book,
    NativeBookVerifier,
    Precision,
    TradeSequence,
    infer_precision,
)
from connector.kraken import messages as m
from tests.conftest import KRAKEN_CAPTURES

BTC = Precision(1, 8)

Make = Callable[[int], BookVerifier | NativeBookVerifier]


@pytest.fixture(params=["python", "native"])
def make(request: pytest.FixtureRequest) -> Make:
    """Both implementations of the `book` channel's verifier must pass every verifier test."""
    if request.param == "python":
        return lambda depth: BookVerifier("book", depth)
    return NativeBookVerifier


def _lv(pairs: list[list[str]]) -> list[dict[str, str]]:
    return [{"price": p, "qty": q} for p, q in pairs]


def _doc() -> dict[str, Any]:
    return json.loads((KRAKEN_CAPTURES / "official_doc_examples.json").read_text())


def _instrument_precisions() -> dict[str, Precision]:
    doc = json.loads((KRAKEN_CAPTURES / "instrument_snapshot_683_pairs.json").read_text())
    return {p["symbol"]: Precision(p["price_precision"], p["qty_precision"]) for p in doc["data"]["pairs"]}


def test_official_l2_example() -> None:
    ex = _doc()["l2_btcusd_doc_example"]
    book = L2Book(10, Precision(ex["price_precision"], ex["qty_precision"]))
    book.apply(_lv(ex["bids"]), _lv(ex["asks"]))
    assert book.checksum() == ex["checksum"] == 3310070434


def test_official_matic_snapshot_then_update_needs_padding() -> None:
    ex = _doc()["l2_maticusd_doc_snapshot_then_update"]
    book = L2Book(10, Precision(4, 8))
    book.apply(_lv(ex["snapshot"]["bids"]), _lv(ex["snapshot"]["asks"]))
    assert book.checksum() == ex["snapshot"]["checksum"] == 2439117997  # "0.566" rendered as 5660
    book.apply(_lv(ex["update"]["bids"]), _lv(ex["update"]["asks"]))
    assert book.checksum() == ex["update"]["checksum"] == 2114181697


def test_official_l3_example() -> None:
    ex = _doc()["l3_btcusd_doc_example"]
    book = L3Book(10, Precision(1, 8))
    bids = [m.L3Order(f"b{i}", p, q, None, None) for i, (p, q) in enumerate(ex["bids"])]
    asks = [m.L3Order(f"a{i}", p, q, None, None) for i, (p, q) in enumerate(ex["asks"])]
    book.apply(bids, asks)
    assert book.checksum() == ex["checksum"] == 1063832831


def test_python_kraken_sdk_capture_all_510_verify_then_the_bad_one_fails(make: Make) -> None:
    doc = json.loads((KRAKEN_CAPTURES / "python-kraken-sdk_orderbook-v2.json").read_text())
    verifier = make(10)
    frames = [doc["init"], *doc["updates"]]
    verdicts = []
    for i, obj in enumerate(frames):
        msg = m.parse(json.dumps(obj))
        assert isinstance(msg, m.BookMessage)
        verdicts.append(
            verifier.verify(msg.symbol, msg.type == "snapshot", msg.bids, msg.asks, msg.checksum, i, BTC)
        )
    assert all(v.ok for v in verdicts[:510]), [i for i, v in enumerate(verdicts) if not v.ok][:5]
    bad = m.parse(
        '{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","bids":[{"price":29430.3,"qty":1.69289565}],'
        '"asks":[],"checksum":2438868880}]}'
    )
    assert isinstance(bad, m.BookMessage)
    v = verifier.verify("BTC/USD", False, bad.bids, bad.asks, bad.checksum, 999, BTC)
    assert v.ok is False and v.computed != 2438868880


@pytest.mark.parametrize(
    "name",
    ["crypto-tracker_btc-eth_book-trade.jsonl", "tickvault_btc_book.jsonl"],
)
def test_raw_captures_verify_with_instrument_precision(name: str, make: Make) -> None:
    precisions = _instrument_precisions()
    verifier = make(10)
    checked = 0
    for i, line in enumerate((KRAKEN_CAPTURES / name).read_text().splitlines()):
        msg = m.parse(line)
        if isinstance(msg, m.BookMessage):
            v = verifier.verify(
                msg.symbol,
                msg.type == "snapshot",
                msg.bids,
                msg.asks,
                msg.checksum,
                i,
                precisions[msg.symbol],
            )
            assert v.ok is True, (name, i)
            checked += 1
    assert checked >= 4


def test_raw_capture_also_verifies_with_precision_inferred_from_its_text(make: Make) -> None:
    """The raw captures keep Kraken's trailing zeros, so the fallback inference gets it right."""
    verifier = make(10)
    oks = []
    for i, line in enumerate(
        (KRAKEN_CAPTURES / "crypto-tracker_btc-eth_book-trade.jsonl").read_text().splitlines()
    ):
        msg = m.parse(line)
        if isinstance(msg, m.BookMessage):
            v = verifier.verify(msg.symbol, msg.type == "snapshot", msg.bids, msg.asks, msg.checksum, i, None)
            oks.append(v.ok)
            assert v.precision.inferred
    assert oks and all(oks)


def test_cryptonorm_snapshot_and_update(make: Make) -> None:
    verifier = make(10)
    for i, name in enumerate(("cryptonorm_book_snapshot.json", "cryptonorm_book_update.json")):
        msg = m.parse((KRAKEN_CAPTURES / name).read_text())
        assert isinstance(msg, m.BookMessage)
        v = verifier.verify(msg.symbol, msg.type == "snapshot", msg.bids, msg.asks, msg.checksum, i, BTC)
        assert v.ok is True


def test_l2_rules_delete_truncate_same_price_twice() -> None:
    book = L2Book(3, Precision(1, 2))
    book.apply(
        _lv([["10.0", "1"], ["9.0", "1"], ["8.0", "1"]]), _lv([["11.0", "1"], ["12.0", "1"], ["13.0", "1"]])
    )
    # deleting an unknown level is ignored; an insert past the depth is truncated; last one wins
    book.apply(_lv([["7.5", "0"], ["9.5", "2"], ["9.5", "3"], ["10.0", "0"]]), [])
    bids, asks = book.top()
    assert bids == [(95, 300), (90, 100), (80, 100)]
    book.apply(_lv([["10.5", "1"]]), _lv([["10.9", "4"]]))
    bids, asks = book.top()
    assert bids == [(105, 100), (95, 300), (90, 100)]  # 8.0 fell out of depth 3
    assert asks == [(109, 400), (110, 100), (120, 100)]


def test_l3_add_modify_delete_keep_queue_order_and_truncate() -> None:
    p = Precision(1, 2)
    book = L3Book(2, p)
    o = m.L3Order
    book.apply(
        [o("b1", "10.0", "1", None, None), o("b2", "10.0", "2", None, None), o("b3", "9.0", "1", None, None)],
        [],
    )
    book.apply([o("b1", "10.0", "0.5", "modify", None)], [])  # keeps its place in the queue
    ref = L3Book(2, p)
    ref.apply(
        [o("x", "10.0", "0.5", None, None), o("y", "10.0", "2", None, None), o("z", "9.0", "1", None, None)],
        [],
    )
    assert book.checksum() == ref.checksum()
    book.apply([o("b4", "8.0", "1", "add", None)], [])  # third level: truncated at depth 2
    assert book.checksum() == ref.checksum()
    book.apply([o("b2", "10.0", "2", "delete", None), o("b1", "10.0", "0.5", "delete", None)], [])
    only = L3Book(2, p)
    only.apply([o("z", "9.0", "1", None, None)], [])
    assert book.checksum() == only.checksum()
    with pytest.raises(ValueError, match="unknown level3 event"):
        book.apply([o("b9", "9.0", "1", "teleport", None)], [])


def test_mismatch_invalidates_until_the_next_snapshot_which_gets_a_new_epoch(make: Make) -> None:
    ex = _doc()["l2_btcusd_doc_example"]
    verifier = make(10)
    bids, asks = _lv(ex["bids"]), _lv(ex["asks"])
    first = verifier.verify("BTC/USD", True, bids, asks, ex["checksum"], 1_000, BTC)
    assert first.ok is True and first.epoch == 1_000
    wrong = verifier.verify("BTC/USD", False, _lv([["45283.5", "0.2"]]), [], 12345, 1_001, BTC)
    assert wrong.ok is False and wrong.epoch == 1_000 and wrong.computed is not None
    assert not verifier.valid("BTC/USD")
    after = verifier.verify("BTC/USD", False, _lv([["45283.5", "0.3"]]), [], 1, 1_002, BTC)
    assert after.ok is None  # unverifiable until a snapshot
    again = verifier.verify("BTC/USD", True, bids, asks, ex["checksum"], 900, BTC)
    assert again.ok is True and again.epoch == 1_001  # increases even if the clock went back


def test_epochs_keep_increasing_across_a_restart() -> None:
    before = EpochClock()
    last = [before.next("book:BTC/USD", 1_700_000_000_000_000 + i) for i in range(3)][-1]
    restarted = EpochClock()  # a new process knows nothing but the clock
    assert restarted.next("book:BTC/USD", 1_700_000_000_500_000) > last


def test_inferred_precision_never_claims_a_mismatch(make: Make) -> None:
    verifier = make(10)
    v = verifier.verify("X/Y", True, _lv([["1.5", "2"]]), _lv([["1.6", "3"]]), 42, 1, None)
    assert v.precision == Precision(1, 0, True)
    assert v.ok is None and v.computed is not None


def test_value_beyond_precision_invalidates_instead_of_crashing(make: Make) -> None:
    verifier = make(10)
    verifier.verify("X/Y", True, _lv([["1.5", "2"]]), [], 1, 1, Precision(1, 0))
    v = verifier.verify("X/Y", False, _lv([["1.55", "2"]]), [], 1, 2, Precision(1, 0))
    assert v.ok is None and not verifier.valid("X/Y")


def test_infer_precision() -> None:
    assert infer_precision([("1873.30", "0.10000000"), ("1873", "1e-08")]) == Precision(2, 8, True)


def test_trade_sequence_gaps_duplicates_and_resets() -> None:
    seq = TradeSequence()
    assert seq.check("A", 10, False) is None
    assert seq.check("A", 11, False) is None
    gap = seq.check("A", 14, False)
    assert gap is not None and gap.publish and (gap.expected, gap.last) == (12, 11)
    dup = seq.check("A", 13, True)  # resent by a snapshot: already published
    assert dup is not None and not dup.publish
    assert seq.check("A", 15, True) is None
    back = seq.check("A", 3, False)  # live ids went back: published, reported
    assert back is not None and back.publish and back.expected == 16
    assert seq.check("B", 1, True) is None  # symbols are independent
    assert seq.last("A") == 3
