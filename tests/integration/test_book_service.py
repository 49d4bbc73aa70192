"""`kracked book` on a real broker: verdicts from Kraken's checksums, mismatch → continuity → recovery."""

from __future__ import annotations

import copy

from consumers.book.service import BookService
from schemas.topics import Topic
from tests.integration.conftest import KafkaTest
from tests.integration.helpers import ServiceThread, produce, read_all
from tests.unit.test_book_domain import sdk_records


def test_book_service_verifies_every_record_and_recovers_after_a_mismatch(kafka: KafkaTest) -> None:
    kafka.create_topics(Topic.BOOK, Topic.LEVEL3, Topic.BOOK_TOP, Topic.CONTINUITY, Topic.DEADLETTER)
    first = sdk_records(epoch=1)
    bad = copy.deepcopy(first[5])
    bad["checksum"] = (bad["checksum"] + 1) % 2**32  # a wrong checksum, as the simulator injects
    second = sdk_records(epoch=2)
    stream = [*first[:5], bad, *first[6:10], *second]
    for i, record in enumerate(stream):
        record["ts_recv"] = 1_700_000_000_000_000 + i
    produce(kafka, Topic.BOOK, stream)

    ServiceThread(BookService(top_n=10), kafka, stop_when_idle_s=3.0).start().wait_idle()

    tops = read_all(kafka, Topic.BOOK_TOP)
    continuity = read_all(kafka, Topic.CONTINUITY)
    valid = [t for t in tops if t["valid"]]
    # never a valid top between the mismatch and the next snapshot
    assert not [t for t in valid if t["epoch"] == 1 and t["source_offset"] >= 5]
    invalid = [t for t in tops if not t["valid"]]
    assert len(invalid) == 1 and invalid[0]["source_offset"] == 5 and invalid[0]["checksum_ok"] is False
    assert [c["event"] for c in continuity] == ["snapshot_reset", "checksum_mismatch", "snapshot_reset"]
    assert continuity[1]["expected"] == bad["checksum"] and continuity[2]["epoch"] == 2
    # every valid top carries Kraken's own checksum for that record (verified, not assumed)
    by_offset = {i: r for i, r in enumerate(stream)}
    for top in valid:
        assert top["checksum"] == by_offset[top["source_offset"]]["checksum"]
        assert len(top["bids"]) == 10 and len(top["asks"]) == 10
    assert {t["epoch"] for t in valid} == {1, 2}
    assert valid[-1]["source_offset"] == len(stream) - 1
