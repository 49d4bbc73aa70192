"""What happens to each frame: integrity checks, mapping to records, publishing, continuity events.

`Pipeline` is the `Handler` of every Kraken connection. Per data message it runs synchronously on the
connection's read loop (the hot path): verify the book checksum (`connector.integrity`), map to
records (`connector.mapping`), encode and produce (`connector.publisher`). Whatever fails on the way
is a dead letter with its stage (`parse`, `map`, `serialize`) and the raw frame; the connector goes on.

Integrity reactions (DESIGN §4, case 2): a book checksum mismatch publishes `checksum_mismatch`, and the
connection resubscribes that one symbol (a fresh snapshot, hence a new epoch) which publishes
`resubscribe`; a trade-id jump publishes `trade_id_gap` with expected/received ids and the time range;
trades the 50-trade snapshot resends after a resubscribe are skipped (already published). Connection
state changes become `connect`, `disconnect`, `reconnect` (one per symbol, with the gap's time
range), `resubscribe`, `stale_feed`, `subscribe_rejected` and `status_change` events.

Instrument data feeds the pair precisions used for checksums and the list of online pairs (`all`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from connector.integrity import (
    BookVerifier,
    EpochClock,
    NativeBookVerifier,
    Precision,
    TradeSequence,
)
from connector.kraken.client import Connection, ConnEvent
from connector.kraken.messages import (
    BalancesMessage,
    BookMessage,
    DataMessage,
    ExecutionsMessage,
    InstrumentMessage,
    Level3Message,
    OhlcMessage,
    ParseError,
    StatusMessage,
    TickerMessage,
    TradeMessage,
    parse,
)
from connector.mapping import (
    MapError,
    Out,
    balance_records,
    book_record,
    execution_records,
    instrument_records,
    level3_record,
    ohlc_records,
    precisions_from,
    status_record,
    ticker_record,
    trade_record,
)
from connector.publisher import Publisher
from schemas.avro_writer import AvroWriteError
from schemas.topics import Topic

log = logging.getLogger(__name__)

CHANNEL_OF: dict[type, str] = {
    BookMessage: "book",
    Level3Message: "level3",
    TradeMessage: "trade",
    TickerMessage: "ticker",
    OhlcMessage: "ohlc",
    InstrumentMessage: "instrument",
    StatusMessage: "status",
    ExecutionsMessage: "executions",
    BalancesMessage: "balances",
}


class Pipeline:
    """Handler of every connection (see module docstring)."""

    def __init__(
        self,
        publisher: Publisher,
        *,
        book_depth: int = 10,
        level3_depth: int = 10,
        publish_channels: frozenset[str] = frozenset(),
    ) -> None:
        self.pub = publisher
        self.book_depth = book_depth
        self.level3_depth = level3_depth
        self.publish_channels = publish_channels
        epochs = EpochClock()
        # the book channel's books are native (the hot path takes whole frames, see on_frame)
        self.books = NativeBookVerifier(book_depth, publisher.headers.get(Topic.BOOK, b""))
        self.l3books = BookVerifier("level3", level3_depth, epochs)
        self.trades = TradeSequence()
        self._last_trade_ts: dict[str, int] = {}
        self.precisions: dict[str, Precision] = {}
        self.online_pairs: list[str] = []
        self.instruments_ready = asyncio.Event()
        self.system: str | None = None
        # counters read by the metrics task (plain ints: the hot path does not touch Prometheus)
        self.frames: dict[str, int] = {c: 0 for c in CHANNEL_OF.values()}
        self.malformed = 0
        self.checksum_mismatches: dict[str, int] = {"book": 0, "level3": 0}
        self.trade_gaps = 0
        self.duplicate_trades = 0
        self.reconnects: dict[str, int] = {}
        self._warned: dict[str, tuple[float, int]] = {}
        self._dispatch: dict[type, Callable[[Connection, Any, str, int], None]] = {
            BookMessage: self._book,
            Level3Message: self._level3,
            TradeMessage: self._trade,
            TickerMessage: self._ticker,
            OhlcMessage: self._ohlc,
            InstrumentMessage: self._instrument,
            StatusMessage: self._status,
            ExecutionsMessage: self._executions,
            BalancesMessage: self._balances,
        }
        # the compiled writers, called directly on the hot path (they raise AvroWriteError)
        self._write_book = publisher.writers.get(Topic.BOOK, None)
        self._write_ticker = publisher.writers.get(Topic.TICKER, None)
        self._produce = publisher.produce
        self._feed = self.books.feed

    # ----------------------------------------------------------------------------------------- Handler

    def on_frame(self, conn: Connection, raw: str | bytes, ts_recv: int) -> bool:
        """The hot path: a `book` frame parsed, verified and encoded in one native call, then produced.

        False when the native path does not take the frame whole (another channel, a control frame,
        anything unusual): the connection then parses it and calls `on_message`/`on_malformed`.
        """
        taken = self._feed(raw, ts_recv)
        if taken is None:
            return False
        symbol, value, ok = taken
        self.frames["book"] += 1
        self._produce(Topic.BOOK, symbol, value)
        if ok is False:
            v = self.books.last()
            computed, epoch = (None, 0) if v is None else (v.computed, v.epoch)
            self._mismatch(conn, "book", symbol, computed, epoch, ts_recv, self._expected(raw))
        return True

    @staticmethod
    def _expected(raw: str | bytes) -> int:
        """Kraken's checksum of a book frame (for the mismatch report only, off the hot path)."""
        try:
            msg = parse(raw)
        except ParseError:
            return -1
        return msg.checksum if isinstance(msg, BookMessage) else -1

    def on_message(self, conn: Connection, msg: DataMessage, raw: str, ts_recv: int) -> None:
        cls = msg.__class__
        channel = CHANNEL_OF[cls]
        self.frames[channel] += 1
        try:
            self._dispatch[cls](conn, msg, raw, ts_recv)
        except AvroWriteError as exc:
            self.pub.dead_letter("serialize", f"AvroWriteError: {exc}", raw, channel)
        except (MapError, ParseError, ValueError, KeyError, TypeError, AttributeError) as exc:
            self.pub.dead_letter("map", f"{type(exc).__name__}: {exc}", raw, channel)

    def on_malformed(self, conn: Connection, raw: str | bytes, error: ParseError, ts_recv: int) -> None:
        self.malformed += 1
        self.pub.dead_letter("parse", str(error), raw, error.channel)

    def on_event(self, conn: Connection, event: ConnEvent) -> None:
        kind = event.kind
        channels = ",".join(conn.spec.channels)
        detail = f"{conn.name}: {event.detail}"
        if kind == "reconnect":
            self.reconnects[conn.name] = self.reconnects.get(conn.name, 0) + 1
            self.pub.continuity(
                "reconnect", detail, channel=channels, gap_start=event.gap_start, gap_end=event.gap_end
            )
            # per symbol too, so a consumer of one symbol sees the gap's time range
            for symbol in conn.spec.symbols:
                self.pub.continuity(
                    "reconnect",
                    detail,
                    channel=",".join(ch for ch in conn.spec.channels if symbol in conn.wanted_symbols(ch)),
                    symbol=symbol,
                    gap_start=event.gap_start,
                    gap_end=event.gap_end,
                )
            self.pub.continuity(
                "resubscribe",
                f"{conn.name}: every subscription requested again after the reconnect",
                channel=channels,
                gap_start=event.gap_start,
                gap_end=event.gap_end,
            )
        elif kind == "disconnect":
            # nothing verifies these books until the snapshots that follow the reconnect
            for symbol in conn.spec.symbols:
                if "book" in conn.spec.channels:
                    self.books.invalidate(symbol)
                if "level3" in conn.spec.channels:
                    self.l3books.invalidate(symbol)
            self.pub.continuity("disconnect", detail, channel=channels, gap_start=event.gap_start)
        elif kind == "resubscribe":
            verifier = self.l3books if event.channel == "level3" else self.books
            self.pub.continuity(
                "resubscribe",
                detail,
                channel=event.channel,
                symbol=event.symbol,
                epoch=verifier.epoch(event.symbol or ""),
            )
        elif kind in ("connect", "stale_feed", "subscribe_rejected", "auth_failed"):
            self.pub.continuity(
                kind,
                detail,
                channel=event.channel or channels,
                symbol=event.symbol,
                gap_start=event.gap_start,
                gap_end=event.gap_end,
            )
        else:
            log.debug("%s: event %s", conn.name, event)

    def _warn(self, key: str, fmt: str, *args: object) -> None:
        """A warning per integrity event, but at most one line per key every 10 s (a broken feed must
        not flood the log: the continuity topic has every event)."""
        now = time.monotonic()
        last, suppressed = self._warned.get(key, (0.0, 0))
        if now - last < 10.0:
            self._warned[key] = (last, suppressed + 1)
            return
        if suppressed:
            fmt += f" (and {suppressed} more in the last {now - last:.0f}s)"
        self._warned[key] = (now, 0)
        log.warning(fmt, *args)

    # ----------------------------------------------------------------------------------------- channels

    def _book(self, conn: Connection, msg: BookMessage, raw: str, ts: int) -> None:
        symbol = msg.symbol
        v = self.books.verify(
            symbol, msg.type == "snapshot", msg.bids, msg.asks, msg.checksum, ts, self.precisions.get(symbol)
        )
        value = self._write_book(book_record(msg, self.book_depth, v, ts))  # type: ignore[misc]
        self._produce(Topic.BOOK, symbol, value)
        if v.ok is False:
            self._mismatch(conn, "book", symbol, v.computed, v.epoch, ts, msg.checksum)

    def _level3(self, conn: Connection, msg: Level3Message, raw: str, ts: int) -> None:
        symbol = msg.symbol
        v = self.l3books.verify(
            symbol, msg.type == "snapshot", msg.bids, msg.asks, msg.checksum, ts, self.precisions.get(symbol)
        )
        out = Out(Topic.LEVEL3, symbol, level3_record(msg, self.level3_depth, v, ts))
        self.pub.publish(out)
        if v.ok is False:
            self._mismatch(conn, "level3", symbol, v.computed, v.epoch, ts, msg.checksum)

    def _mismatch(
        self,
        conn: Connection,
        channel: str,
        symbol: str,
        computed: int | None,
        epoch: int,
        ts: int,
        expected: int,
    ) -> None:
        self.checksum_mismatches[channel] += 1
        self._warn(
            f"mismatch:{channel}:{symbol}",
            "%s %s: checksum mismatch (Kraken %d, ours %s) in epoch %d: resubscribing this symbol",
            channel,
            symbol,
            expected,
            computed,
            epoch,
        )
        self.pub.continuity(
            "checksum_mismatch",
            f"{conn.name}: Kraken's checksum {expected} != computed {computed}; book invalid until a new snapshot",
            channel=channel,
            symbol=symbol,
            expected=expected,
            received=computed,
            epoch=epoch,
            gap_start=ts,
        )
        if not conn.resubscribe(channel, symbol, "checksum mismatch"):
            log.warning(
                "%s %s: cannot resubscribe now (not connected); the next reconnect will", channel, symbol
            )

    def _trade(self, conn: Connection, msg: TradeMessage, raw: str, ts: int) -> None:
        snapshot = msg.type == "snapshot"
        outs = []
        gaps = []
        check = self.trades.check
        for t in msg.trades:
            chk = check(t.symbol, t.trade_id, snapshot)
            if chk is not None and not chk.publish:
                self.duplicate_trades += 1
                continue
            record = trade_record(t, msg.type, ts)
            if chk is not None and chk.expected is not None:
                gaps.append(
                    (
                        t.symbol,
                        chk.expected,
                        t.trade_id,
                        self._last_trade_ts.get(t.symbol),
                        record["ts_event"],
                    )
                )
            self._last_trade_ts[t.symbol] = record["ts_event"]
            outs.append(Out(Topic.TRADE, t.symbol, record))
        self.pub.publish_all(outs)
        for symbol, expected, received, start, end in gaps:
            self.trade_gaps += 1
            missing = received - expected
            what = f"{missing} trade id(s) missing" if missing > 0 else "trade ids went back"
            self._warn(
                f"trade:{symbol}", "trade %s: %s (expected %d, got %d)", symbol, what, expected, received
            )
            self.pub.continuity(
                "trade_id_gap",
                f"{conn.name}: {what}",
                channel="trade",
                symbol=symbol,
                expected=expected,
                received=received,
                gap_start=start,
                gap_end=end,
            )

    def _ticker(self, conn: Connection, msg: TickerMessage, raw: str, ts: int) -> None:
        value = self._write_ticker(ticker_record(msg, conn.event_trigger, ts))  # type: ignore[misc]
        self._produce(Topic.TICKER, msg.symbol, value)

    def _ohlc(self, conn: Connection, msg: OhlcMessage, raw: str, ts: int) -> None:
        self.pub.publish_all(ohlc_records(msg, ts))

    def _instrument(self, conn: Connection, msg: InstrumentMessage, raw: str, ts: int) -> None:
        precisions = precisions_from(msg.pairs)
        self.precisions.update(precisions)
        for symbol, precision in precisions.items():
            self.books.set_precision(symbol, precision)
        if msg.type == "snapshot":
            self.online_pairs = [
                str(p["symbol"])
                for p in msg.pairs
                if p.get("status") == "online" and isinstance(p.get("symbol"), str)
            ]
            if not self.instruments_ready.is_set():
                log.info(
                    "instrument snapshot: %d pairs (%d online), %d assets",
                    len(msg.pairs),
                    len(self.online_pairs),
                    len(msg.assets),
                )
            self.instruments_ready.set()
        if "instrument" in self.publish_channels:
            self.pub.publish_all(instrument_records(msg, ts))

    def _status(self, conn: Connection, msg: StatusMessage, raw: str, ts: int) -> None:
        system = msg.system
        if system != self.system:
            if self.system is not None or system != "online":
                log.warning("exchange status: %s -> %s", self.system, system)
                self.pub.continuity(
                    "status_change",
                    f"{conn.name}: exchange status {self.system} -> {system}",
                    channel="status",
                    gap_start=ts if system != "online" else None,
                    gap_end=ts if system == "online" else None,
                )
            else:
                log.info("exchange status: %s", system)
            self.system = system
        if "status" in self.publish_channels:
            self.pub.publish(Out(Topic.STATUS, "status", status_record(msg, ts)))

    def _executions(self, conn: Connection, msg: ExecutionsMessage, raw: str, ts: int) -> None:
        self.pub.publish_all(execution_records(msg, ts))

    def _balances(self, conn: Connection, msg: BalancesMessage, raw: str, ts: int) -> None:
        self.pub.publish_all(balance_records(msg, ts))
