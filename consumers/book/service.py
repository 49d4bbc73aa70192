"""The `book` service: Kafka in/out around `consumers.book.domain.BookKeeper`.

Reads `kraken.book` (L2) and `kraken.level3` (L3), verifies Kraken's CRC32 after every record and
publishes `kracked.book.top` (top N, checksum verdict, epoch, source offset) after each change of the
top N, or at most once per `cadence_ms` per symbol when a cadence is set. A mismatch publishes a
continuity event and one `valid=false` top (so readers drop the book), then nothing for that symbol
until a snapshot verifies again (a new epoch). Times are taken from the source record, never the
wall clock, so a replay produces byte-identical output.
"""

from __future__ import annotations

import logging
from typing import Any

from consumers.book.domain import BookKeeper, BookResult, BookTop, Level, Transition, Verdict
from consumers.runtime import BaseService, Inbound, Outbox
from kracked import metrics
from schemas.topics import Topic

log = logging.getLogger(__name__)

MISMATCHES = metrics.counter("kracked_book_checksum_mismatches_total", "checksum mismatches", ("kind",))
VERDICTS = metrics.counter("kracked_book_verdicts_total", "records by verdict", ("kind", "verdict"))
_LEVEL_CACHE_MAX = 100_000


class BookService(BaseService):
    name = "book"
    outputs: tuple[Topic, ...] = (Topic.BOOK_TOP, Topic.CONTINUITY)

    def __init__(
        self, top_n: int = 10, cadence_ms: int = 0, level2: bool = True, level3: bool = True
    ) -> None:
        self.top_n = top_n
        self.cadence_us = cadence_ms * 1000
        self.inputs = tuple(t for t, on in ((Topic.BOOK, level2), (Topic.LEVEL3, level3)) if on)
        self.keepers = {Topic.BOOK: BookKeeper(level3=False), Topic.LEVEL3: BookKeeper(level3=True)}
        # cadence mode: symbol -> (last published ts, pending source) per topic
        self._last_pub: dict[tuple[Topic, str], int] = {}
        self._pending: dict[tuple[Topic, str], Inbound] = {}
        # hot path: the verdict counters per topic (a `labels()` lookup costs more than the book update)
        self._verdicts: dict[Topic, dict[Verdict, Any]] = {topic: {} for topic in self.keepers}
        # level → its record dict, shared by every publication that contains it (records are read-only;
        # a top of 2 × 10 levels mostly repeats the levels of the previous one)
        self._level_dicts: dict[Level, dict[str, str]] = {}

    def handle(self, item: Inbound, out: Outbox) -> None:
        topic = item.topic
        keeper = self.keepers[topic]
        result = keeper.process(item.record)
        verdict = result.verdict
        counters = self._verdicts[topic]
        counter = counters.get(verdict)
        if counter is None:
            counter = counters[verdict] = VERDICTS.labels(keeper.kind, verdict.value)
        counter.inc()
        transition = result.transition
        if transition is not Transition.NONE or verdict is not Verdict.OK:
            if transition is Transition.BECAME_INVALID or (
                verdict is Verdict.MISMATCH and transition is Transition.NONE
            ):
                self._continuity(item, result, out)
                top = keeper.top(result.symbol, self.top_n)
                if transition is Transition.BECAME_INVALID and top is not None:
                    self._publish(item, top, checksum_ok=False, out=out)
                return
            if transition in (Transition.RECOVERED, Transition.BECAME_VALID):
                self._continuity(item, result, out)
        if not (result.valid and result.top_changed):
            return
        if self.cadence_us:
            key = (topic, result.symbol)
            ts = item.record["ts_recv"]
            if ts - self._last_pub.get(key, 0) < self.cadence_us:
                self._pending[key] = item
                return
            self._last_pub[key] = ts
            self._pending.pop(key, None)
        top = keeper.top(result.symbol, self.top_n)
        if top is not None:
            self._publish(item, top, checksum_ok=True, out=out)

    def tick(self, now: int, out: Outbox, caught_up: bool) -> None:
        if not self._pending:
            return
        for key, item in list(self._pending.items()):
            topic, symbol = key
            if now - self._last_pub.get(key, 0) >= self.cadence_us:
                keeper = self.keepers[topic]
                top = keeper.top(symbol, self.top_n)
                del self._pending[key]
                if top is not None and top.valid:
                    self._last_pub[key] = now
                    self._publish(item, top, checksum_ok=True, out=out)

    def _publish(self, item: Inbound, top: BookTop, checksum_ok: bool, out: Outbox) -> None:
        record = item.record
        ts_recv = record["ts_recv"]
        out.emit(
            Topic.BOOK_TOP,
            top.symbol,
            {
                "symbol": top.symbol,
                "kind": top.kind,
                "depth": self.top_n,
                "bids": self._levels(top.bids),
                "asks": self._levels(top.asks),
                "checksum": top.checksum,
                "checksum_ok": checksum_ok,
                "valid": top.valid and checksum_ok,
                "epoch": top.epoch,
                "price_precision": top.price_precision,
                "qty_precision": top.qty_precision,
                "ts_event": record.get("ts_event"),
                "ts_recv": ts_recv,
                "ts": ts_recv,
                "source_topic": item.topic_name,
                "source_partition": item.partition,
                "source_offset": item.offset,
            },
        )

    def _levels(self, levels: list[Level]) -> list[dict[str, str]]:
        cache = self._level_dicts
        get = cache.get
        out = [get(level) for level in levels]
        if None in out:
            if len(cache) >= _LEVEL_CACHE_MAX:
                cache.clear()  # bounded memory: the levels in use come back on the next publications
            out = [
                get(level) or cache.setdefault(level, {"price": level.price, "qty": level.qty})
                for level in levels
            ]
        return out  # type: ignore[return-value]

    def _continuity(self, item: Inbound, result: BookResult, out: Outbox) -> None:
        if result.verdict is Verdict.MISMATCH:
            MISMATCHES.labels(self.keepers[item.topic].kind).inc()
            event = "checksum_mismatch"
            detail = (
                f"{item.topic.value} epoch {result.epoch}: Kraken {result.expected_checksum}, "
                f"computed {result.computed_checksum}; invalid until the next snapshot"
            )
        elif result.valid:
            event = "snapshot_reset"
            detail = f"{item.topic.value}: book verified from the snapshot of epoch {result.epoch}"
        else:
            event = "book_invalid"
            detail = f"{item.topic.value}: {result.verdict.value}" + (
                f" ({result.error})" if result.error else ""
            )
        log.info(
            "%s %s at %s[%d]@%d: %s",
            result.symbol,
            event,
            item.topic_name,
            item.partition,
            item.offset,
            detail,
        )
        record: dict[str, Any] = {
            "event": event,
            "source": "book",
            "channel": item.topic.channel,
            "symbol": result.symbol,
            "gap_start": None,
            "gap_end": None,
            "expected": result.expected_checksum,
            "received": result.computed_checksum,
            "epoch": result.epoch,
            "detail": detail,
            "ts": item.record["ts_recv"],
        }
        out.emit(Topic.CONTINUITY, result.symbol, record)
