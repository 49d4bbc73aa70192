"""Every real Kraken capture replayed through the simulator: each checksum verifies in the connector
and each book message arrives in `kraken.book` unchanged (Kraken's decimal text, Kraken's checksum)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from connector.kraken import messages as m
from connector.kraken.sim.config import SimConfig
from connector.kraken.sim.server import SimThread
from schemas.topics import Topic
from tests.conftest import KRAKEN_CAPTURES
from tests.integration.conftest import KafkaTest
from tests.integration.helpers import read_all
from tests.integration.test_connector_sim import frames, running_connector, wait_for


def _wire_books(path: Path) -> list[dict[str, Any]]:
    """The book messages of a capture file, in file order, as Kraken's own data items."""
    text = path.read_text()
    if path.suffix == ".jsonl":
        docs = [m.decode(line) for line in text.splitlines() if line.strip()]
    else:
        doc = m.decode(text)
        docs = [doc["init"], *doc["updates"]] if "init" in doc else [doc]
    return [d["data"][0] for d in docs if d.get("channel") == "book"]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


CAPTURES = [
    "crypto-tracker_btc-eth_book-trade.jsonl",
    "tickvault_btc_book.jsonl",
    "python-kraken-sdk_orderbook-v2.json",
    "cryptonorm_book_snapshot.json",
]


@pytest.mark.parametrize("name", CAPTURES)
def test_capture_replay_verifies_and_arrives_unchanged(kafka: KafkaTest, name: str) -> None:
    kafka.create_topics(Topic.BOOK, Topic.TRADE, Topic.CONTINUITY, Topic.DEADLETTER)
    path = KRAKEN_CAPTURES / name
    expected = _wire_books(path)
    symbols = sorted({d["symbol"] for d in expected})
    with (
        SimThread(SimConfig(replay=(path,), rate=None)) as sim,
        running_connector(
            kafka, sim, KRACKED_SYMBOLS=",".join(symbols), KRACKED_CHANNELS="book,trade"
        ) as app,
    ):
        wait_for(lambda: frames(app, "book") >= len(expected), what=f"{len(expected)} book frames")
    books = read_all(kafka, Topic.BOOK)
    assert len(books) == len(expected)
    for symbol in symbols:
        got = [b for b in books if b["symbol"] == symbol]
        want = [d for d in expected if d["symbol"] == symbol]
        assert len(got) == len(want)
        for record, item in zip(got, want, strict=True):
            assert record["checksum"] == item["checksum"]
            assert record["checksum_ok"] is True
            for side in ("bids", "asks"):
                assert record[side] == [
                    {"price": _text(lv["price"]), "qty": _text(lv["qty"])} for lv in item.get(side) or []
                ]
        assert len({b["epoch"] for b in got}) == 1  # one snapshot, one epoch
    assert read_all(kafka, Topic.DEADLETTER) == []
    assert not [c for c in read_all(kafka, Topic.CONTINUITY) if c["event"] == "checksum_mismatch"]


def test_official_doc_examples_book_and_level3(kafka: KafkaTest) -> None:
    """Kraken's worked examples (checksums 3310070434, 2439117997, 2114181697, 1063832831)."""
    kafka.create_topics(Topic.BOOK, Topic.LEVEL3, Topic.CONTINUITY, Topic.DEADLETTER)
    path = KRAKEN_CAPTURES / "official_doc_examples.json"
    with (
        SimThread(SimConfig(replay=(path,), rate=None)) as sim,
        running_connector(
            kafka, sim, KRACKED_SYMBOLS="BTC/USD,MATIC/USD", KRACKED_CHANNELS="book,level3"
        ) as app,
    ):
        wait_for(lambda: frames(app, "book") >= 3 and frames(app, "level3") >= 1, what="doc examples")
    books = read_all(kafka, Topic.BOOK)
    assert sorted(b["checksum"] for b in books) == [2114181697, 2439117997, 3310070434]
    assert all(b["checksum_ok"] is True for b in books)
    matic = [b for b in books if b["symbol"] == "MATIC/USD"]
    assert (matic[0]["price_precision"], matic[0]["qty_precision"]) == (4, 8)
    [l3] = read_all(kafka, Topic.LEVEL3)
    assert (l3["checksum"], l3["checksum_ok"]) == (1063832831, True)
    doc = json.loads(path.read_text())["l3_btcusd_doc_example"]
    assert [(o["limit_price"], o["order_qty"]) for o in l3["bids"]] == [tuple(x) for x in doc["bids"]]
