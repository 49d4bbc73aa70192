"""Replay mode: captured Kraken sessions sent back frame by frame, with their original text.

Inputs (see tests/fixtures/kraken/README.md):
* JSONL of raw wire lines (`*.jsonl`, `*.ndjson`, or any file that is not one JSON document): each
  line is one frame, sent exactly as captured (no trailing newline).
* A JSON document holding messages: `{"init": msg, "updates": [msg, ...]}` (python-kraken-sdk), one
  message (`{"channel": ...}`, CryptoNorm), or an array of messages: each message is sent as the exact
  text span it occupies in the file (pretty-printing included).
* Kraken's doc examples (`official_doc_examples.json`: price/qty string pairs + checksum, no wire
  message): these are *constructed* into book / level3 frames (numbers written from the strings
  unchanged, made-up order ids and timestamps for level3), since no original frame text exists.

Control lines of a capture (acks, pongs, status, heartbeat) are skipped: the simulator sends its own.
Each data frame belongs to a stream (channel, symbol[, ohlc interval]). A subscription replays its
stream from the start; one connection's active streams are merged in capture order, paced at `rate`
frames per second per connection or as fast as the client reads.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .feed import Feed
from .session import Frame, Session, Sub
from .wire import Num, array_element_spans, dumps_exact, loads_exact, object_member_spans, value_spans

if TYPE_CHECKING:
    from .server import Simulator

log = logging.getLogger(__name__)

StreamKey = tuple[str, str | None, int | None]
CONTROL_CHANNELS = frozenset({"status", "heartbeat"})
_QUOTES = ("usdt", "usdc", "usd", "eur", "gbp", "cad", "jpy", "chf", "aud", "btc", "eth")


@dataclass
class ReplayFrame:
    frame: Frame
    key: StreamKey
    snapshot: bool
    source: str  # file:line or file#index, for logs


@dataclass
class ReplayData:
    frames: list[ReplayFrame] = field(default_factory=list)
    skipped: int = 0  # control lines left out
    unreadable: int = 0  # lines that are not JSON, left out

    def symbols(self) -> set[str]:
        return {f.key[1] for f in self.frames if f.key[1] is not None}


def classify(text: str, source: str) -> ReplayFrame | None:
    """A data frame of a capture as a ReplayFrame; None for control messages (acks, status, heartbeat).

    Raises ValueError for text that is not JSON."""
    msg = loads_exact(text)
    if not isinstance(msg, dict) or "method" in msg:
        return None
    channel = msg.get("channel")
    if not isinstance(channel, str) or channel in CONTROL_CHANNELS:
        return None
    data = msg.get("data")
    first: dict[str, Any] = data[0] if isinstance(data, list) and data and isinstance(data[0], dict) else {}
    symbol = first.get("symbol") if isinstance(first.get("symbol"), str) else None
    interval = first.get("interval") if channel == "ohlc" and isinstance(first.get("interval"), int) else None
    trade_ids: tuple[int, ...] = ()
    if channel == "trade" and isinstance(data, list):
        trade_ids = tuple(
            d["trade_id"] for d in data if isinstance(d, dict) and isinstance(d.get("trade_id"), int)
        )
    frame = Frame(
        text.encode(),
        channel,
        symbol,
        trade_ids=trade_ids,
        checksum=channel in ("book", "level3") and "checksum" in first,
    )
    return ReplayFrame(frame, (channel, symbol, interval), msg.get("type") == "snapshot", source)


def _doc_symbol(name: str) -> str:
    token = name.split("_")[1] if "_" in name else name
    for quote in _QUOTES:
        if token.endswith(quote) and len(token) > len(quote):
            return f"{token[: -len(quote)].upper()}/{quote.upper()}"
    raise ValueError(f"cannot infer a symbol from {name!r}")


def _levels(pairs: list[list[str]], l3: bool, side: str) -> list[dict[str, Any]]:
    if not l3:
        return [{"price": Num(p), "qty": Num(q)} for p, q in pairs]
    ts = "2024-01-08T12:00:00.000000000Z"
    return [
        {
            "order_id": f"OSIM{side[0].upper()}{i:02d}-DOCEX-AMPLE{i:02d}",
            "limit_price": Num(p),
            "order_qty": Num(q),
            "timestamp": ts,
        }
        for i, (p, q) in enumerate(pairs)
    ]


def _doc_examples(doc: dict[str, Any], source: str) -> list[str]:
    """Wire frames built from Kraken's doc examples (price/qty string pairs + checksum)."""
    out: list[str] = []
    for name, ex in doc.items():
        if not isinstance(ex, dict):
            continue
        symbol = ex.get("symbol") if isinstance(ex.get("symbol"), str) else _doc_symbol(name)
        l3 = name.startswith("l3")
        channel = "level3" if l3 else "book"
        parts = [("snapshot", ex)] if "asks" in ex else []
        parts += [(kind, ex[kind]) for kind in ("snapshot", "update") if isinstance(ex.get(kind), dict)]
        for kind, body in parts:
            data = {
                "symbol": symbol,
                "bids": _levels(body.get("bids", []), l3, "bid"),
                "asks": _levels(body.get("asks", []), l3, "ask"),
                "checksum": body["checksum"],
            }
            out.append(dumps_exact({"channel": channel, "type": kind, "data": [data]}))
    log.info("%s: constructed %d frames from doc examples (no original wire text exists)", source, len(out))
    return out


def _document_frames(text: str, source: str) -> list[tuple[str, str]]:
    """(frame text, source) for a JSON document file."""
    value, start, end = value_spans(text)
    if isinstance(value, list):
        return [(text[s:e], f"{source}#{i}") for i, (s, e) in enumerate(array_element_spans(text, start))]
    if not isinstance(value, dict):
        raise ValueError(f"{source}: not a message, a list of messages or an init/updates document")
    if "channel" in value or "method" in value:
        return [(text[start:end], source)]
    members = object_member_spans(text, start)
    if "init" in members or "updates" in members:
        out: list[tuple[str, str]] = []
        if "init" in members:
            s, e = members["init"]
            out.append((text[s:e], f"{source}#init"))
        if "updates" in members:
            spans = array_element_spans(text, members["updates"][0])
            out += [(text[s:e], f"{source}#updates[{i}]") for i, (s, e) in enumerate(spans)]
        return out
    built = _doc_examples(loads_exact(text), source)
    return [(t, f"{source}#doc{i}") for i, t in enumerate(built)]


def load_replay(paths: Iterable[Path]) -> ReplayData:
    """Read capture files in order into one list of data frames."""
    data = ReplayData()
    for path in paths:
        text = Path(path).read_text(encoding="utf-8")
        items: list[tuple[str, str]]
        if Path(path).suffix in (".jsonl", ".ndjson") or not _is_one_document(text):
            items = [
                (line, f"{path.name}:{n}") for n, line in enumerate(text.splitlines(), 1) if line.strip()
            ]
        else:
            items = _document_frames(text, path.name)
        for frame_text, source in items:
            try:
                rf = classify(frame_text, source)
            except ValueError:
                log.warning("replay: %s is not JSON; left out", source)
                data.unreadable += 1
                continue
            if rf is None:
                data.skipped += 1
            else:
                data.frames.append(rf)
        log.info(
            "replay: %s: %d data frames so far, %d control lines skipped",
            path.name,
            len(data.frames),
            data.skipped,
        )
    return data


def _is_one_document(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


class _Stream:
    __slots__ = ("cycle", "indices", "pos", "removed")

    def __init__(self, indices: list[int]) -> None:
        self.indices = indices
        self.pos = 0
        self.cycle = 0
        self.removed = False


class _Cursor:
    """One connection's merge of its active streams, in capture order."""

    def __init__(self, feed: ReplayFeed, session: Session) -> None:
        self.feed = feed
        self.session = session
        self.streams: dict[StreamKey, _Stream] = {}
        self.heap: list[tuple[int, int, int, _Stream]] = []
        self.wake = asyncio.Event()
        self._seq = 0
        self.task = asyncio.create_task(self.run(), name=f"sim-replay-{session.index}")

    def _schedule(self, st: _Stream) -> None:
        if st.pos >= len(st.indices):
            if not self.feed.loop or not st.indices:
                return
            st.pos = 0
            st.cycle += 1
        self._seq += 1
        heapq.heappush(self.heap, (st.cycle, st.indices[st.pos], self._seq, st))

    def add(self, key: StreamKey, snapshots: bool) -> None:
        frames = self.feed.data.frames
        indices = [i for i in self.feed.by_key.get(key, []) if snapshots or not frames[i].snapshot]
        old = self.streams.pop(key, None)
        if old is not None:
            old.removed = True
        st = _Stream(indices)
        self.streams[key] = st
        self._schedule(st)
        self.wake.set()

    def remove(self, key: StreamKey) -> None:
        st = self.streams.pop(key, None)
        if st is not None:
            st.removed = True

    async def run(self) -> None:
        session, frames = self.session, self.feed.data.frames
        rate = self.feed.rate
        loop = asyncio.get_running_loop()
        next_t = loop.time()
        sent = 0
        while not session.closed:
            if not self.heap:
                self.wake.clear()
                await self.wake.wait()
                next_t = loop.time()
                continue
            _, index, _, st = heapq.heappop(self.heap)
            if st.removed:
                continue
            session.push(frames[index].frame)
            st.pos += 1
            self._schedule(st)
            sent += 1
            if rate is not None:
                next_t += 1.0 / rate
                await asyncio.sleep(max(0.0, next_t - loop.time()))
            elif sent % 64 == 0:
                if session.congested:
                    await session.wait_drained()
                await asyncio.sleep(0)


class ReplayFeed(Feed):
    """Serves captured frames to whoever subscribes to their stream."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.rate = sim.config.rate
        self.loop = sim.config.replay_loop
        self.data = load_replay(sim.config.replay)
        self.by_key: dict[StreamKey, list[int]] = {}
        for i, f in enumerate(self.data.frames):
            self.by_key.setdefault(f.key, []).append(i)
        self._symbols = frozenset(sim.instruments.symbols | self.data.symbols())
        self.instrument_frame = Frame(sim.instruments.snapshot_text().encode(), "instrument")
        self.cursors: dict[Session, _Cursor] = {}
        log.info(
            "replay: %d data frames in %d streams (%s)",
            len(self.data.frames),
            len(self.by_key),
            ", ".join(f"{k[0]}:{k[1]}" + (f":{k[2]}" if k[2] else "") for k in self.by_key),
        )

    def known_symbols(self) -> frozenset[str]:
        return self._symbols

    @staticmethod
    def _key(sub: Sub) -> StreamKey:
        return (sub.channel, sub.symbol, sub.interval if sub.channel == "ohlc" else None)

    def subscribe(self, session: Session, sub: Sub) -> None:
        if sub.channel == "instrument" and sub.snapshot:
            session.push(self.instrument_frame)
        cursor = self.cursors.get(session)
        if cursor is None:
            cursor = self.cursors[session] = _Cursor(self, session)
        cursor.add(self._key(sub), sub.snapshot)

    def unsubscribe(self, session: Session, sub: Sub) -> None:
        cursor = self.cursors.get(session)
        if cursor is not None:
            cursor.remove(self._key(sub))

    def session_closed(self, session: Session) -> None:
        cursor = self.cursors.pop(session, None)
        if cursor is not None:
            cursor.task.cancel()

    async def run(self) -> None:
        await asyncio.Event().wait()
