"""The native replay path: `--through book,bars` (either or both) over `kraken.book` / `kraken.trade`
ranges at max speed, with the per-record work in `kracked_native.ReplayCore`.

Python only moves batches: it reads each partition span's messages as consumed (`raw_batches`), hands
the batches to the core whole, and produces the encoded outputs the core returns. The core decodes,
merges in the documented replay order, runs the book and bars services' rules on the virtual clock
and encodes `kracked.book.top` / `kracked.bars` (see `native/src/replay.rs`). The services' settings
are read from the very `BookService` / `BarsService` objects the general path would run, and the
general path (`consumers.replay.engine.Replayer`) stays the reference: the tests require both to
produce byte-identical outputs.

Values written with another schema id than ours (an older schema) are decoded by the project's serde
and re-encoded with the current schema before the core reads them; unreadable values are skipped
with a warning, as the general path's source does.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TextIO

from confluent_kafka import Message, Producer
from kracked_native import ReplayCore

from consumers.bars.service import BarsService
from consumers.book.service import BookService
from consumers.replay.domain import progress_line
from consumers.replay.engine import Deliveries, ReplayResult, ensure_target_topics
from consumers.replay.source import PartitionSpan, raw_batches
from consumers.runtime import Service
from kracked.settings import KafkaSettings
from schemas.serde import Serde, SerdeError
from schemas.topics import Topic

log = logging.getLogger(__name__)

NATIVE_TOPICS = (Topic.BOOK, Topic.TRADE)
_OUTPUTS = (Topic.BOOK_TOP, Topic.BARS, Topic.CONTINUITY)  # by the core's output kind 0, 1, 2
_CONTINUITY = 2


def unsupported(
    topics: Sequence[Topic], services: Sequence[Service], speed: float | None, republish: bool
) -> str:
    """Why the native path cannot run this replay ("" when it can)."""
    if speed is not None:
        return "it replays at max speed only"
    if republish:
        return "it does not re-publish the inputs"
    if not services:
        return "it runs in-process services only (--through book,bars)"
    others = [s.name for s in services if type(s) not in (BookService, BarsService)]
    if others:
        return f"it runs book and bars only, not {', '.join(others)}"
    for service in services:
        if isinstance(service, BookService) and Topic.LEVEL3 in topics:
            return "it rebuilds L2 books only (kraken.level3 needs the Python book)"
    extra = [t.value for t in topics if t not in NATIVE_TOPICS]
    if extra:
        return f"it reads kraken.book and kraken.trade only, not {', '.join(extra)}"
    return ""


class NativeReplayer:
    """Same role as `Replayer` for the cases `unsupported` accepts; see the module doc."""

    def __init__(
        self,
        target: KafkaSettings,
        services: Sequence[Service],
        progress: TextIO | None = None,
        producer: Producer | None = None,
    ) -> None:
        self.target = target
        self.services = list(services)
        self.progress = progress
        self.serde = Serde(target.schema_registry_url, target.topic_prefix)
        self.deliveries = Deliveries()
        self.producer = producer or self.deliveries.producer(target)
        self._source_serde: Serde | None = None

    def prepare(self, inputs: Sequence[Topic], source: KafkaSettings | None = None) -> None:
        """Create the target topics, as `Replayer.prepare` (no re-publishing here); with `source`, also
        look up the input schema ids (registry client and round trips are set-up, not replay)."""
        ensure_target_topics(self.target, self.services, ())
        # set-up, like the topics: the registry round trips for the output schema ids happen here
        for topic in _OUTPUTS:
            self.serde.codec(topic).header()
        if source is not None:
            self._source_serde = Serde(source.schema_registry_url, source.topic_prefix)
            for topic in inputs:
                self._source_serde.codec(topic).header()

    def core(self) -> ReplayCore:
        """A `ReplayCore` running the services with their own settings, in `--through` order."""
        core = ReplayCore()
        for service in self.services:
            if isinstance(service, BookService):
                header = self.serde.codec(Topic.BOOK_TOP).header()
                core.with_book(service.top_n, service.cadence_us // 1000, header)
            elif isinstance(service, BarsService):
                header = self.serde.codec(Topic.BARS).header()
                core.with_bars(
                    list(service.intervals_s),
                    service.grace_us // 1000,
                    service.idle_delay_us // 1000,
                    header,
                )
        return core

    def run(
        self,
        source: KafkaSettings,
        spans: Sequence[PartitionSpan],
        total: int | None,
        batches: Callable[[KafkaSettings, PartitionSpan], Iterator[list[Message]]] = raw_batches,
        source_serde: Serde | None = None,
    ) -> ReplayResult:
        """Replay the spans (of `source`) through the services; outputs produced under the target."""
        # The cyclic garbage collector would walk every consumed batch's Message objects again and
        # again (a tenth of the run, measured); the loop creates no reference cycles, so it is paused
        # for the replay and restored after.
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            return self._run(source, spans, total, batches, source_serde)
        finally:
            if was_enabled:
                gc.enable()

    def _run(
        self,
        source: KafkaSettings,
        spans: Sequence[PartitionSpan],
        total: int | None,
        batches: Callable[[KafkaSettings, PartitionSpan], Iterator[list[Message]]],
        source_serde: Serde | None,
    ) -> ReplayResult:
        started = time.monotonic()
        core = self.core()
        if source_serde is None:
            source_serde = self._source_serde or Serde(source.schema_registry_url, source.topic_prefix)
        live = [span for span in spans if span.size]  # by the core's stream index
        readers: list[Iterator[list[Message]]] = []
        normalizers: list[Callable[[bytes | None, int], bytes | None]] = []
        for span in live:
            codec = source_serde.codec(span.topic)
            core.add_stream(
                span.topic_index,
                span.topic is Topic.BOOK,
                span.name,
                span.partition,
                span.end,
                codec.header(),
            )
            readers.append(batches(source, span))
            normalizers.append(self._normalizer(source_serde, span))
        last_report = 0.0
        while True:
            need = core.run()
            if need >= 0:
                batch = next(readers[need], None)
                if batch is None:
                    core.close_stream(need)
                    continue
                for offset, reason in core.push(need, batch, normalizers[need]):
                    log.warning(
                        "skipping %s[%d]@%d: %s", live[need].name, live[need].partition, offset, reason
                    )
                if self.progress is not None and time.monotonic() - last_report > 0.2:
                    last_report = time.monotonic()
                    self._report(core.processed, total, last_report - started)
                continue
            self._produce(core)
            if need == -1:
                break
        core.finish()
        self._produce(core)
        self.deliveries.settle(self.producer)
        elapsed = time.monotonic() - started
        if self.progress is not None:
            self.progress.write("\r" + progress_line(core.processed, total, elapsed) + "\n")
        return ReplayResult(core.processed, 0, elapsed)

    def _normalizer(self, serde: Serde, span: PartitionSpan) -> Callable[[bytes | None, int], bytes | None]:
        codec = serde.codec(span.topic)

        def normalize(value: bytes | None, offset: int) -> bytes | None:
            # another schema id than ours (or junk): the serde resolves it against our schema
            try:
                return codec.encode(codec.decode(value))
            except SerdeError as exc:
                log.warning("skipping %s[%d]@%d: %s", span.name, span.partition, offset, exc)
                return None

        return normalize

    def _produce(self, core: Any) -> None:
        """Produce what the core emitted: values straight from native code, continuity events here."""
        prefix = self.target.topic_prefix
        names = [t.name_with(prefix) for t in _OUTPUTS[:_CONTINUITY]]
        core.produce(self.producer, names, self._continuity)

    def _continuity(self, record: dict[str, Any], origin: str) -> None:
        log.info("%s %s at %s: %s", record["symbol"], record["event"], origin, record["detail"])
        value = self.serde.encode(Topic.CONTINUITY, record)
        while True:
            try:
                self.producer.produce(
                    Topic.CONTINUITY.name_with(self.target.topic_prefix), value, record["symbol"].encode()
                )
                break
            except BufferError:
                self.producer.poll(0.1)  # local queue full: let librdkafka deliver, then retry

    def _report(self, done: int, total: int | None, elapsed: float) -> None:
        if self.progress is not None:
            self.progress.write("\r" + progress_line(done, total, elapsed))
            self.progress.flush()
