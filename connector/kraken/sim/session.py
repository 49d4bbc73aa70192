"""One client connection: the Kraken v2 request protocol, an outgoing queue, heartbeats and faults.

Requests (reference §1.3–1.6): `subscribe` / `unsubscribe` get one ack per symbol with `req_id`,
`success`, `result` echoing the effective params and `time_in`/`time_out`; bad params get an error
ack (`success: false`, `error`, and `symbol` when one symbol is at fault) while the other symbols of
the same request still succeed; `ping` gets `pong`. On connect the client gets a `status` message;
once it has a subscription it gets a `heartbeat` every `heartbeat_interval` (§1.7).

Outgoing frames go through one queue per connection and one writer task, which writes them in
batches straight into the websockets protocol (one drain per batch: the max-rate path) and applies
the fault injection (faults.py). The market waits for a connection whose queue is full, so nothing is
lost for a slow reader; a stalled connection is exempt and is dropped if its queue overflows.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from .config import AUTH_PATH, BOOK_DEPTHS, L3_DEPTHS, L3_PATH, OHLC_INTERVALS
from .faults import FaultState
from .wire import dumps, now_text

if TYPE_CHECKING:
    from .server import Simulator

log = logging.getLogger(__name__)

PUBLIC_CHANNELS = frozenset({"ticker", "book", "ohlc", "trade", "instrument"})
SYMBOL_CHANNELS = frozenset({"ticker", "book", "ohlc", "trade", "level3"})
PRIVATE_CHANNELS = frozenset({"executions", "balances"})
MARKET_CHANNELS = frozenset({"ticker", "book", "ohlc", "trade", "level3", "executions", "balances"})


def ws_text_frame(payload: bytes) -> bytes:
    """RFC 6455 unmasked, unfragmented text frame (server to client; no extension negotiated)."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65536:
        return b"\x81\x7e" + n.to_bytes(2, "big") + payload
    return b"\x81\x7f" + n.to_bytes(8, "big") + payload


class Frame:
    """One outgoing text frame, pre-encoded once (payload and WebSocket framing) for every subscriber."""

    __slots__ = ("_wire", "channel", "checksum", "data", "symbol", "trade_ids")

    def __init__(
        self,
        data: bytes,
        channel: str,
        symbol: str | None = None,
        trade_ids: tuple[int, ...] = (),
        checksum: bool = False,
    ) -> None:
        self.data = data
        self.channel = channel  # "" for control frames (status, heartbeat, acks, injected)
        self.symbol = symbol
        self.trade_ids = trade_ids
        self.checksum = checksum
        self._wire: bytes | None = None

    @property
    def wire(self) -> bytes:
        w = self._wire
        if w is None:
            w = self._wire = ws_text_frame(self.data)
        return w


HEARTBEAT = Frame(b'{"channel":"heartbeat"}', "")


@dataclass(frozen=True)
class Sub:
    """One accepted subscription (the effective params, defaults filled in)."""

    channel: str
    symbol: str | None = None
    depth: int | None = None
    interval: int | None = None
    event_trigger: str | None = None
    snapshot: bool = True
    snap_orders: bool = True
    snap_trades: bool = False

    @property
    def key(self) -> tuple[str, str | None, int | None]:
        # One subscription per (channel, symbol); ohlc may hold several intervals (reference §2.3).
        return (self.channel, self.symbol, self.interval if self.channel == "ohlc" else None)

    def result(self, method: str) -> dict[str, Any]:
        """The ack's `result` (reference §1.4 / §2: defaults are echoed)."""
        r: dict[str, Any] = {"channel": self.channel}
        sub = method == "subscribe"
        if self.channel in ("book", "level3"):
            r["depth"] = self.depth
        elif self.channel == "ohlc":
            r["interval"] = self.interval
        elif self.channel == "ticker":
            r["event_trigger"] = self.event_trigger
        elif self.channel == "executions" and sub:
            r["maxratecount"] = 125
            r["snap_orders"] = self.snap_orders
            r["snap_trades"] = self.snap_trades
        if sub and self.channel != "executions":
            r["snapshot"] = self.snapshot
        if self.symbol is not None:
            r["symbol"] = self.symbol
        if sub and self.channel == "ohlc":
            r["warnings"] = ["timestamp is deprecated, use interval_begin"]
        if sub and self.channel == "instrument":
            r["warnings"] = ["tick_size is deprecated, use price_increment"]
        return r


class RequestError(Exception):
    """A request-level error reply (`error` text, optional offending symbol)."""

    def __init__(self, error: str, symbol: str | None = None) -> None:
        super().__init__(error)
        self.error = error
        self.symbol = symbol


def connection_id(seed: int, index: int) -> int:
    """A u64 id like Kraken's (often above 2**63: reference §1.2), deterministic from seed + index."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{index}".encode()).digest()[:8], "big")


class Session:
    """Serves one WebSocket connection."""

    def __init__(self, sim: Simulator, ws: ServerConnection, path: str, index: int) -> None:
        self.sim = sim
        self.ws = ws
        self.path = path
        self.index = index
        self.endpoint = "auth" if path == AUTH_PATH else "l3" if path == L3_PATH else "public"
        self.conn_id = connection_id(sim.config.seed, index)
        self.subs: dict[tuple[str, str | None, int | None], Sub] = {}
        self.sequences: dict[str, int] = {}
        self.queue: deque[Frame] = deque()
        self.closed = False
        self.stall_until = 0.0
        self.faults = FaultState(sim.config.faults, random.Random(f"{sim.config.seed}:faults:{index}"))
        self._wake = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._loop = asyncio.get_running_loop()
        self._max_queue = sim.config.max_queue
        self._batch = sim.config.batch_frames
        self._tasks: list[asyncio.Task[None]] = []

    def __repr__(self) -> str:
        return f"Session(#{self.index} {self.endpoint})"

    # --- outgoing ---------------------------------------------------------------------------------

    def push(self, frame: Frame) -> None:
        """Queue a frame (called by the feeds on the event loop; never blocks)."""
        if self.closed:
            return
        q = self.queue
        q.append(frame)
        if len(q) == 1:
            self._wake.set()
        if len(q) >= self._max_queue:
            self._drained.clear()
            if len(q) >= 10 * self._max_queue:
                log.warning("%s: %d frames queued: dropping the connection", self, len(q))
                self.abort()

    def push_text(self, text: str, channel: str = "") -> None:
        self.push(Frame(text.encode(), channel))

    @property
    def congested(self) -> bool:
        """Full queue on a connection that is not stalled: the market should wait for it."""
        return (
            len(self.queue) >= self._max_queue and not self.closed and self.stall_until <= self._loop.time()
        )

    async def wait_drained(self) -> None:
        """Wait until the queue is half empty; a client that reads nothing for `slow_client_timeout`
        seconds is disconnected (as an exchange drops a slow consumer) so it cannot hold up the rest."""
        try:
            await asyncio.wait_for(self._drained.wait(), self.sim.config.slow_client_timeout)
        except TimeoutError:
            log.warning(
                "%s: client not reading (%d frames queued): dropping the connection", self, len(self.queue)
            )
            self.sim.stats.count_fault("slow_client_drop")
            self.abort()

    def next_sequence(self, channel: str) -> int:
        n = self.sequences.get(channel, 0) + 1
        self.sequences[channel] = n
        return n

    def abort(self) -> None:
        """Close TCP without a close frame (what a network drop looks like to the client)."""
        if not self.closed:
            self.closed = True
            self._drained.set()
            self._wake.set()
            self.ws.transport.abort()

    def stall(self, seconds: float) -> None:
        self.stall_until = max(self.stall_until, self._loop.time() + seconds)
        self.sim.stats.count_fault("stall")
        log.info("%s: stalled for %.3fs", self, seconds)

    async def _writer(self) -> None:
        # Frames are written as ready-made WebSocket frames straight to the transport, one write and
        # one drain per batch: the per-frame cost of the generic send path would cap the max rate.
        # Safe because everything runs on the loop thread and each write holds whole frames; the
        # websockets protocol still does the handshake, reading, pings/pongs and closing.
        ws, q, stats, faults = self.ws, self.queue, self.sim.stats, self.faults
        transport, protocol = ws.transport, ws.protocol
        try:
            while not self.closed:
                if not q:
                    self._drained.set()
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                wait = self.stall_until - self._loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                    continue
                if protocol.state is not State.OPEN or transport.is_closing():
                    break
                out: list[bytes] = []
                drop = False
                stall = 0.0
                fault_active = faults.active
                while q and len(out) < self._batch:
                    f = q.popleft()
                    if not f.channel:
                        stats.control(len(f.data))
                        out.append(f.wire)
                    elif not fault_active:
                        stats.delivered(f, len(f.data))
                        out.append(f.wire)
                    else:
                        v = faults.on_data_frame(f.data, f.channel, f.symbol, f.checksum, bool(f.trade_ids))
                        if v.fault:
                            stats.count_fault(v.fault)
                        if v.data is None:
                            stats.withhold(f)
                            continue
                        stats.delivered(f, len(v.data))
                        out.append(f.wire if v.data is f.data else ws_text_frame(v.data))
                        for kind, bad in v.extra:
                            out.append(ws_text_frame(bad))
                            stats.count_fault("malformed_" + kind)
                        drop, stall = v.drop_after, v.stall_after
                        if drop or stall:
                            break
                transport.write(b"".join(out))
                await ws.drain()
                if len(q) < self._max_queue // 2:
                    self._drained.set()
                if drop:
                    stats.count_fault("drop")
                    log.info("%s: fault: dropping the connection (no close frame)", self)
                    self.abort()
                elif stall:
                    self.stall(stall)
        except ConnectionClosed:
            pass
        finally:
            self.closed = True
            self._drained.set()

    async def _heartbeat(self) -> None:
        interval = self.sim.config.heartbeat_interval
        while not self.closed:
            await asyncio.sleep(interval)
            if self.subs:
                self.push(HEARTBEAT)

    # --- lifecycle --------------------------------------------------------------------------------

    async def run(self) -> None:
        self.push_text(self.sim.status_text(self.conn_id))
        self._tasks = [
            asyncio.create_task(self._writer(), name=f"sim-writer-{self.index}"),
            asyncio.create_task(self._heartbeat(), name=f"sim-heartbeat-{self.index}"),
        ]
        try:
            async for message in self.ws:
                time_in = now_text()
                self.handle(message, time_in)
                if self.closed:
                    break
        except ConnectionClosed:
            pass
        finally:
            self.closed = True
            self._drained.set()
            self._wake.set()
            self.sim.feed.session_closed(self)
            for t in self._tasks:
                t.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- requests ---------------------------------------------------------------------------------

    def _reply(self, msg: dict[str, Any]) -> None:
        msg["time_out"] = now_text()
        self.push_text(dumps(msg))

    def _error(
        self, method: str | None, req_id: Any, error: str, time_in: str, symbol: str | None = None
    ) -> None:
        msg: dict[str, Any] = {"error": error}
        if method is not None:
            msg["method"] = method
        if req_id is not None:
            msg["req_id"] = req_id
        msg["success"] = False
        if symbol is not None:
            msg["symbol"] = symbol
        msg["time_in"] = time_in
        self.sim.stats.errors_sent += 1
        self._reply(msg)

    def _ack(self, method: str, req_id: Any, sub: Sub, time_in: str) -> None:
        msg: dict[str, Any] = {"method": method}
        if req_id is not None:
            msg["req_id"] = req_id
        msg["result"] = sub.result(method)
        msg["success"] = True
        msg["time_in"] = time_in
        self._reply(msg)

    def handle(self, message: str | bytes, time_in: str) -> None:
        try:
            req = json.loads(message)
        except ValueError:
            self._error(None, None, "Malformed request", time_in)
            return
        if not isinstance(req, dict):
            self._error(None, None, "Malformed request", time_in)
            return
        method, req_id = req.get("method"), req.get("req_id")
        if req_id is not None and (not isinstance(req_id, int) or isinstance(req_id, bool)):
            self._error(method, None, "EGeneral:Invalid arguments:req_id must be an integer", time_in)
            return
        if method == "ping":
            msg: dict[str, Any] = {"method": "pong"}
            if req_id is not None:
                msg["req_id"] = req_id
            msg["time_in"] = time_in
            self._reply(msg)
        elif method in ("subscribe", "unsubscribe"):
            params = req.get("params")
            if not isinstance(params, dict):
                self._error(method, req_id, "EGeneral:Invalid arguments:params", time_in)
                return
            try:
                subs = self._parse(method, params)
            except RequestError as exc:
                self._error(method, req_id, exc.error, time_in, exc.symbol)
                return
            for sub_or_error in subs:
                if isinstance(sub_or_error, RequestError):
                    self._error(method, req_id, sub_or_error.error, time_in, sub_or_error.symbol)
                elif method == "subscribe":
                    self._subscribe(req_id, sub_or_error, time_in)
                else:
                    self._unsubscribe(req_id, sub_or_error, time_in)
        elif isinstance(method, str):
            self._error(method, req_id, f"EGeneral:Invalid arguments:method {method} not supported", time_in)
        else:
            self._error(None, req_id, "Malformed request", time_in)

    def _check_token(self, params: dict[str, Any]) -> None:
        token = params.get("token")
        if not isinstance(token, str) or not token:
            raise RequestError("EGeneral:Invalid arguments:token required")
        if not self.sim.tokens.accept(token):
            raise RequestError("ESession:Invalid session")

    def _parse(self, method: str, params: dict[str, Any]) -> list[Sub | RequestError]:
        """Validate params; request-wide problems raise, per-symbol problems are returned in place."""
        channel = params.get("channel")
        if not isinstance(channel, str):
            raise RequestError("EGeneral:Invalid arguments:channel")
        if channel not in MARKET_CHANNELS | {"instrument"}:
            raise RequestError(f"Channel {channel} not found")
        # Private channels only where Kraken serves them (reference §1.1): executions/balances on the
        # auth endpoint, level3 on the l3 endpoint; public channels are served everywhere.
        if channel in PRIVATE_CHANNELS and self.endpoint != "auth":
            raise RequestError(f"Channel {channel} requires the authenticated endpoint {AUTH_PATH}")
        if channel == "level3" and self.endpoint != "l3":
            raise RequestError(f"Channel level3 requires the level3 endpoint {L3_PATH}")
        if channel in PRIVATE_CHANNELS or channel == "level3":
            self._check_token(params)
        snapshot = params.get("snapshot", channel != "trade")
        if not isinstance(snapshot, bool):
            raise RequestError("EGeneral:Invalid arguments:snapshot")
        base = Sub(channel, snapshot=snapshot)
        sub_method = method == "subscribe"
        if channel == "book" or channel == "level3":
            allowed = BOOK_DEPTHS if channel == "book" else L3_DEPTHS
            default = self.sim.config.book_depth_default if channel == "book" else 10
            # An unsubscribe without depth matches whatever depth is subscribed.
            depth = params.get("depth", default if sub_method else None)
            if (depth is not None or sub_method) and (depth not in allowed or isinstance(depth, bool)):
                raise RequestError("Subscription depth not supported")
            base = replace(base, depth=depth)
        elif channel == "ohlc":
            interval = params.get("interval")
            if interval is None and not sub_method:
                interval = 0  # unsubscribe without interval: every interval of the symbol
            elif interval not in OHLC_INTERVALS or isinstance(interval, bool):
                raise RequestError("Subscription ohlc interval not supported")
            base = replace(base, interval=interval)
        elif channel == "ticker":
            trigger = params.get("event_trigger", "trades")
            if trigger not in ("trades", "bbo"):
                raise RequestError("EGeneral:Invalid arguments:event_trigger")
            base = replace(base, event_trigger=trigger)
        elif channel == "executions":
            so, st = params.get("snap_orders", True), params.get("snap_trades", False)
            if not isinstance(so, bool) or not isinstance(st, bool):
                raise RequestError("EGeneral:Invalid arguments:snap_orders/snap_trades")
            base = replace(base, snap_orders=so, snap_trades=st)
        if channel not in SYMBOL_CHANNELS:
            return [base]
        symbols = params.get("symbol")
        if not isinstance(symbols, list) or not symbols or not all(isinstance(s, str) for s in symbols):
            raise RequestError("EGeneral:Invalid arguments:symbol")
        out: list[Sub | RequestError] = []
        known = self.sim.feed.known_symbols()
        for sym in symbols:
            if sym not in known:
                out.append(RequestError(f"Currency pair not supported {sym}", sym))
            elif sub_method and sym in self.sim.reject_symbols:
                out.append(RequestError(self.sim.config.faults.reject_error, sym))
            else:
                out.append(replace(base, symbol=sym))
        return out

    def _subscribe(self, req_id: Any, sub: Sub, time_in: str) -> None:
        if sub.key in self.subs:
            self._error("subscribe", req_id, "Already subscribed", time_in, sub.symbol)
            return
        self.subs[sub.key] = sub
        self.sim.stats.subscriptions += 1
        self._ack("subscribe", req_id, sub, time_in)
        # The snapshot follows the ack in the same queue, so it precedes every update (consistent view).
        self.sim.feed.subscribe(self, sub)

    def _matching(self, sub: Sub) -> Iterable[Sub]:
        if sub.channel == "ohlc" and sub.interval == 0:
            return [s for k, s in self.subs.items() if k[0] == "ohlc" and k[1] == sub.symbol]
        found = self.subs.get(sub.key)
        return [found] if found is not None else []

    def _unsubscribe(self, req_id: Any, sub: Sub, time_in: str) -> None:
        matches = list(self._matching(sub))
        if not matches or (sub.depth is not None and matches[0].depth != sub.depth):
            self._error("unsubscribe", req_id, "Subscription Not Found", time_in, sub.symbol)
            return
        for found in matches:
            del self.subs[found.key]
            self.sim.feed.unsubscribe(self, found)
            self._ack("unsubscribe", req_id, found, time_in)
