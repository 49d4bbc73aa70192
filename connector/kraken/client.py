"""Kraken WebSocket v2 connections: connect, subscribe, keep alive, reconnect, resubscribe.

One `Connection` runs one socket forever (until its stop event): it takes a slot from the shared
`ConnectLimiter` (Kraken/Cloudflare allow about 150 connection attempts per IP per rolling 10 minutes
and ban for 10 minutes beyond, reference §7.1), fetches a fresh token for private endpoints
(reference §3.1: a token per connection), subscribes everything it owns, reads frames, answers
liveness (application `ping` every `ping_seconds`, reference §1.6; a watchdog reconnects when no frame
came for `watchdog_seconds`), and on any loss reconnects with capped, jittered exponential backoff
(at least 5 s while the exchange reports maintenance, reference §7.3) and resubscribes everything.

Subscriptions are tracked per (channel, symbol, interval) from the one-ack-per-symbol responses
(reference §1.4) matched by `req_id`. A rejected symbol is reported to the handler and skipped; the
others stay subscribed (reference §1.5). `resubscribe(channel, symbol)` re-requests one symbol
(unsubscribe + subscribe, so Kraken sends a fresh snapshot) after a checksum mismatch (§4.7).

The read loop is the connector's hot path: each frame is first offered whole to the `Handler`'s
`on_frame` (the pipeline's native `book` path takes most frames there); the others are parsed here
(control frames are handled here, heartbeats and pongs only feed liveness) and data models go to the
`Handler` synchronously. When the handler's publisher is blocked by Kafka back-pressure, the loop stops
reading (the socket buffers fill and TCP pushes back), and the watchdog does not count that time as
silence.

`plan_connections` spreads symbols over connections: one reference connection for `instrument`
(precisions for the checksums, the `all` symbol list), public connections of at most
`symbols_per_connection` symbols, one per extra ticker `event_trigger` (ticker data does not say which
mode produced it), one authenticated connection for executions/balances, and level3 connections of at
most 200 symbols (reference §3.5).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import aiohttp

from connector.kraken import messages
from connector.kraken.auth import AuthError, Credentials, fetch_ws_token
from connector.kraken.messages import Ack, DataMessage, Heartbeat, ParseError, Pong, StatusMessage

log = logging.getLogger(__name__)

PUBLIC_CHANNELS = ("ticker", "book", "trade", "ohlc", "instrument", "status")
AUTH_CHANNELS = ("executions", "balances")
L3_CHANNELS = ("level3",)
ALL_CHANNELS = PUBLIC_CHANNELS + AUTH_CHANNELS + L3_CHANNELS
BOOK_DEPTHS = (10, 25, 100, 500, 1000)
L3_DEPTHS = (10, 100, 1000)
OHLC_INTERVALS = (1, 5, 15, 30, 60, 240, 1440, 10080, 21600)
EVENT_TRIGGERS = ("trades", "bbo")
L3_MAX_SYMBOLS = 200  # per connection (reference §3.5)
L3_COST = {10: 5, 100: 25, 1000: 100}  # subscription rate counter cost per symbol (reference §3.5)
MAX_FRAME = 64 * 1024 * 1024  # depth-1000 snapshots and the instrument snapshot are large (§7.1)

# --------------------------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class Subscription:
    """One channel on one connection: its symbols (none for instrument/executions/balances) and params."""

    channel: str
    symbols: tuple[str, ...] = ()
    params: tuple[tuple[str, Any], ...] = ()  # depth / interval / event_trigger / snapshot flags
    private: bool = False  # needs a token

    @property
    def interval(self) -> int | None:
        return dict(self.params).get("interval")

    def request(self, method: str, symbols: Sequence[str] | None, token: str | None) -> dict[str, Any]:
        """`params` of a subscribe/unsubscribe request for some of the symbols (reference §1.4)."""
        body: dict[str, Any] = {"channel": self.channel}
        if symbols is not None:
            body["symbol"] = list(symbols)
        for name, value in self.params:
            if method == "unsubscribe" and name in ("snapshot", "snap_orders", "snap_trades"):
                continue
            body[name] = value
        if self.private:
            body["token"] = token
        return body


@dataclass(frozen=True)
class ConnectionSpec:
    name: str
    url: str
    subscriptions: tuple[Subscription, ...]
    private: bool = False
    event_trigger: str | None = None  # ticker mode of this connection's ticker subscription
    role: str = "data"  # "reference" for the instrument connection

    @property
    def channels(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s.channel for s in self.subscriptions))

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(sym for s in self.subscriptions for sym in s.symbols))


def _chunks(items: Sequence[str], size: int) -> list[tuple[str, ...]]:
    size = max(1, size)
    return [tuple(items[i : i + size]) for i in range(0, len(items), size)]


def plan_connections(
    *,
    symbols: Sequence[str],
    channels: Sequence[str],
    ws_url: str,
    ws_auth_url: str,
    ws_l3_url: str,
    book_depth: int = 10,
    level3_depth: int = 10,
    ohlc_intervals: Sequence[int] = (1,),
    event_triggers: Sequence[str] = ("trades",),
    trade_snapshot: bool = True,
    symbols_per_connection: int = 50,
    reference: bool = True,
) -> list[ConnectionSpec]:
    """Connections and their subscriptions (see the module docstring)."""
    chans = set(channels)
    specs: list[ConnectionSpec] = []
    if reference:
        specs.append(
            ConnectionSpec(
                "public-ref",
                ws_url,
                (Subscription("instrument", (), (("snapshot", True),)),),
                role="reference",
            )
        )
    per_symbol: list[Subscription] = []
    triggers = list(dict.fromkeys(event_triggers)) or ["trades"]
    for i, chunk in enumerate(_chunks(list(symbols), symbols_per_connection)):
        subs: list[Subscription] = []
        if "ticker" in chans:
            subs.append(Subscription("ticker", chunk, (("event_trigger", triggers[0]), ("snapshot", True))))
        if "book" in chans:
            subs.append(Subscription("book", chunk, (("depth", book_depth), ("snapshot", True))))
        if "trade" in chans:
            # the 50-trade snapshot refills what a reconnect missed; duplicates are skipped by trade_id
            subs.append(Subscription("trade", chunk, (("snapshot", trade_snapshot),)))
        if "ohlc" in chans:
            for interval in dict.fromkeys(ohlc_intervals):
                subs.append(Subscription("ohlc", chunk, (("interval", interval), ("snapshot", True))))
        if subs:
            specs.append(
                ConnectionSpec(
                    f"public-{i + 1}",
                    ws_url,
                    tuple(subs),
                    event_trigger=triggers[0] if "ticker" in chans else None,
                )
            )
        if "ticker" in chans:
            for trigger in triggers[1:]:
                specs.append(
                    ConnectionSpec(
                        f"public-{i + 1}-{trigger}",
                        ws_url,
                        (Subscription("ticker", chunk, (("event_trigger", trigger), ("snapshot", True))),),
                        event_trigger=trigger,
                    )
                )
        per_symbol.extend(subs)
    private = [c for c in AUTH_CHANNELS if c in chans]
    if private:
        subs = []
        if "executions" in chans:
            subs.append(
                Subscription("executions", (), (("snap_orders", True), ("snap_trades", True)), private=True)
            )
        if "balances" in chans:
            subs.append(Subscription("balances", (), (("snapshot", True),), private=True))
        specs.append(ConnectionSpec("auth", ws_auth_url, tuple(subs), private=True))
    if "level3" in chans:
        size = min(symbols_per_connection, L3_MAX_SYMBOLS)
        for i, chunk in enumerate(_chunks(list(symbols), size)):
            sub = Subscription("level3", chunk, (("depth", level3_depth), ("snapshot", True)), private=True)
            specs.append(ConnectionSpec(f"level3-{i + 1}", ws_l3_url, (sub,), private=True))
    return specs


# --------------------------------------------------------------------------------------------- limits


class ConnectLimiter:
    """Sliding-window cap on connection attempts shared by every connection of the process."""

    def __init__(self, max_attempts: int = 120, window: float = 600.0) -> None:
        self.max_attempts = max_attempts
        self.window = window
        self._times: deque[float] = deque()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = time.monotonic()
                while self._times and now - self._times[0] >= self.window:
                    self._times.popleft()
                if len(self._times) < self.max_attempts:
                    self._times.append(now)
                    return
                wait = self.window - (now - self._times[0])
                log.warning(
                    "connection-rate limit reached (%d per %.0fs): waiting %.1fs",
                    self.max_attempts,
                    self.window,
                    wait,
                )
                await asyncio.sleep(wait)


@dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff with jitter: attempt n waits uniform(d/2, d), d = min(cap, base·2^(n-1))."""

    base: float = 0.5
    cap: float = 60.0
    maintenance_floor: float = 5.0  # reference §7.3: not faster than every 5 s after maintenance

    def delay(self, attempt: int, maintenance: bool = False, rng: random.Random | None = None) -> float:
        if attempt <= 0:
            return 0.0
        d = min(self.cap, self.base * (2 ** min(attempt - 1, 30)))
        r = rng or random
        delay = r.uniform(d / 2, d)
        if maintenance:
            delay = max(delay, self.maintenance_floor)
        return delay


# --------------------------------------------------------------------------------------------- handler


class ConnEvent(NamedTuple):
    """A state change of a connection or subscription, reported to the handler (continuity events)."""

    kind: str  # connect, reconnect, disconnect, stale_feed, subscribe_rejected, resubscribe, auth_failed
    # connect/reconnect are reported at the first frame of a session, so gap_end is a real receive time
    detail: str
    channel: str | None = None
    symbol: str | None = None
    gap_start: int | None = None
    gap_end: int | None = None


class Backpressure(Protocol):
    blocked: bool

    async def wait_writable(self) -> None: ...


class _NeverBlocked:
    blocked = False

    async def wait_writable(self) -> None:
        return None


class Handler(Protocol):
    def on_frame(self, conn: Connection, raw: str | bytes, ts_recv: int) -> bool:
        """Take a raw data frame whole (a fast path), or return False to have it parsed here."""
        ...

    def on_message(self, conn: Connection, msg: DataMessage, raw: str, ts_recv: int) -> None: ...

    def on_malformed(self, conn: Connection, raw: str | bytes, error: ParseError, ts_recv: int) -> None: ...

    def on_event(self, conn: Connection, event: ConnEvent) -> None: ...


def is_permanent_rejection(error: str) -> bool:
    """Rejections worth retrying at the next reconnect (service busy, rate) vs. never (bad symbol...)."""
    transient = ("EService:", "rate", "Rate", "Unavailable", "Deadline", "Timeout", "timeout")
    return not any(t in error for t in transient)


@dataclass
class _Request:
    method: str
    sub: Subscription
    symbols: set[str]


@dataclass
class ConnectionOptions:
    watchdog_seconds: float = 15.0
    ping_seconds: float = 15.0
    connect_timeout: float = 15.0
    backoff: Backoff = field(default_factory=Backoff)
    stable_seconds: float = 30.0  # a connection up this long resets the backoff
    symbols_per_request: int = 50
    l3_rate: int = 200  # level3 subscription cost budget per second (standard tier, reference §3.5)


# --------------------------------------------------------------------------------------------- connection


class Connection:
    """One Kraken WebSocket (see module docstring); `run(stop)` returns when `stop` is set."""

    def __init__(
        self,
        spec: ConnectionSpec,
        handler: Handler,
        session: aiohttp.ClientSession,
        *,
        limiter: ConnectLimiter,
        options: ConnectionOptions | None = None,
        credentials: Credentials | None = None,
        rest_url: str = "https://api.kraken.com",
        gate: Backpressure | None = None,
        exchange_status: dict[str, str] | None = None,
    ) -> None:
        self.spec = spec
        self.name = spec.name
        self.handler = handler
        self.session = session
        self.limiter = limiter
        self.options = options or ConnectionOptions()
        self.credentials = credentials
        self.rest_url = rest_url
        self.gate: Backpressure = gate or _NeverBlocked()
        self.exchange_status = exchange_status if exchange_status is not None else {}
        self.event_trigger = spec.event_trigger
        # desired subscriptions: per Subscription, the symbols still wanted (rejections remove them)
        self._wanted: dict[Subscription, list[str]] = {s: list(s.symbols) for s in spec.subscriptions}
        self._retry_later: dict[Subscription, set[str]] = {}
        self.active: set[tuple[str, str | None, int | None]] = set()
        self.connects = 0
        self.heartbeats = 0
        self.pongs = 0
        self.last_frame: int | None = None  # ts (µs) of the last frame of the current/last session
        self._gap_start: int | None = None
        self._first_frame_pending = False
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._outbox: asyncio.Queue[str] | None = None
        self._pending: dict[int, _Request] = {}
        self._req_id = 0
        self._token: str | None = None
        self._idle_since = time.monotonic()
        self._stale = False
        self.stopped_reason: str | None = None

    # ----------------------------------------------------------------------------------------- public

    def wanted_symbols(self, channel: str) -> list[str]:
        return [sym for sub, syms in self._wanted.items() if sub.channel == channel for sym in syms]

    def resubscribe(self, channel: str, symbol: str, reason: str) -> bool:
        """Re-request one symbol of `channel` for a fresh snapshot; False when not connected/owned."""
        if self._outbox is None:
            return False
        for sub, syms in self._wanted.items():
            if sub.channel == channel and symbol in syms:
                self._send("unsubscribe", sub, [symbol])
                self._send("subscribe", sub, [symbol])
                self.handler.on_event(self, ConnEvent("resubscribe", reason, channel, symbol))
                return True
        return False

    async def run(self, stop: asyncio.Event) -> None:
        attempt = 0
        while not stop.is_set():
            await self.limiter.acquire()
            if stop.is_set():
                break
            started = time.monotonic()
            try:
                await self._one_session(stop)
            except AuthError as exc:
                self.handler.on_event(self, ConnEvent("auth_failed", str(exc)))
                if not exc.transient:
                    log.error("%s: %s; this connection stops (the others go on)", self.name, exc)
                    self.stopped_reason = str(exc)
                    return
                log.warning("%s: %s", self.name, exc)
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                log.warning("%s: cannot connect to %s: %s", self.name, self.spec.url, _short(exc))
            if stop.is_set():
                break
            if time.monotonic() - started >= self.options.stable_seconds:
                attempt = 0
            attempt += 1
            maintenance = self.exchange_status.get("system", "online") != "online"
            delay = self.options.backoff.delay(attempt, maintenance)
            log.info("%s: reconnecting in %.2fs (attempt %d)", self.name, delay, attempt)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)

    # ----------------------------------------------------------------------------------------- session

    async def _one_session(self, stop: asyncio.Event) -> None:
        token = None
        if self.spec.private:
            if self.credentials is None:
                raise AuthError("no API key/secret for a private channel", transient=False)
            token = await fetch_ws_token(self.rest_url, self.credentials, self.session)
        self._token = token
        ws = await asyncio.wait_for(
            self.session.ws_connect(
                self.spec.url,
                autoping=True,
                heartbeat=None,
                compress=0,
                max_msg_size=MAX_FRAME,
                timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=2.0),
            ),
            self.options.connect_timeout,
        )
        self.connects += 1
        self._ws = ws
        self._outbox = asyncio.Queue()
        self._pending.clear()
        self.active.clear()
        self._stale = False
        self._first_frame_pending = True
        self._idle_since = time.monotonic()
        first = self.connects == 1
        log.info("%s: connected to %s (%s)", self.name, self.spec.url, "first time" if first else "reconnect")
        tasks = [
            asyncio.create_task(self._writer(ws), name=f"{self.name}-writer"),
            asyncio.create_task(self._pinger(), name=f"{self.name}-ping"),
            asyncio.create_task(self._subscribe_all(), name=f"{self.name}-subscribe"),
        ]
        reader = asyncio.create_task(self._reader(ws), name=f"{self.name}-reader")
        watchdog = asyncio.create_task(self._watchdog(reader), name=f"{self.name}-watchdog")
        stopper = asyncio.create_task(stop.wait(), name=f"{self.name}-stop")
        reason = "closed by server"
        try:
            done, _ = await asyncio.wait({reader, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if stopper in done:
                reason = "stopping"
            elif self._stale:
                reason = f"no frame for {self.options.watchdog_seconds:g}s"
            elif not reader.cancelled() and reader.exception() is not None:
                error = reader.exception()
                reason = f"read failed: {_short(error)}"
                if not isinstance(error, aiohttp.ClientError | OSError | TimeoutError):
                    log.error("%s: unexpected error in the read loop", self.name, exc_info=error)
            else:
                code = ws.close_code
                reason = f"closed by server (code {code})" if code is not None else "connection lost"
        finally:
            for t in (*tasks, watchdog, stopper, reader):
                t.cancel()
            for t in (*tasks, watchdog, stopper, reader):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
            self._outbox = None
            self._ws = None
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 2.0)
            self._gap_start = self.last_frame
            log.info("%s: disconnected: %s", self.name, reason)
            self.handler.on_event(
                self, ConnEvent("disconnect", reason, ",".join(self.spec.channels), None, self.last_frame)
            )

    async def _reader(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        receive = ws.receive
        on_frame = self.handler.on_frame
        gate = self.gate
        text_type = aiohttp.WSMsgType.TEXT
        binary_type = aiohttp.WSMsgType.BINARY
        now_ns = time.time_ns
        while True:
            msg = await receive()
            kind = msg.type
            if kind is text_type or kind is binary_type:
                raw = msg.data
            else:
                return  # CLOSE / CLOSING / CLOSED / ERROR
            ts = now_ns() // 1000
            self.last_frame = ts
            if self._first_frame_pending:
                self._first_frame_pending = False
                self._on_first_frame(ts)
            if not on_frame(self, raw, ts):  # not taken whole by the handler's fast path
                self._parsed(raw, ts)
            if gate.blocked:
                await gate.wait_writable()
                self._idle_since = time.monotonic()

    def _parsed(self, raw: str | bytes, ts: int) -> None:
        """A frame through the Python parser: control frames here, data models to the handler."""
        handler = self.handler
        try:
            m = messages.parse(raw)
        except ParseError as exc:
            handler.on_malformed(self, raw, exc, ts)
            return
        cls = m.__class__
        if cls is Heartbeat:
            self.heartbeats += 1  # liveness only: not published
        elif cls is Pong:
            self.pongs += 1
        elif cls is Ack:
            self._on_ack(m)  # type: ignore[arg-type]
        else:
            if cls is StatusMessage:
                self._on_status(m)  # type: ignore[arg-type]
            handler.on_message(self, m, raw, ts)  # type: ignore[arg-type]

    def _on_first_frame(self, ts: int) -> None:
        if self.connects == 1:
            self.handler.on_event(self, ConnEvent("connect", f"first frame from {self.spec.url}", gap_end=ts))
        else:
            detail = f"reconnected to {self.spec.url} (connect #{self.connects}); resubscribing {len(self.spec.subscriptions)} subscriptions"
            self.handler.on_event(self, ConnEvent("reconnect", detail, None, None, self._gap_start, ts))

    def _on_status(self, msg: StatusMessage) -> None:
        system = msg.system
        self.exchange_status["system"] = system

    async def _watchdog(self, reader: asyncio.Task[None]) -> None:
        limit = self.options.watchdog_seconds
        step = max(0.05, min(1.0, limit / 4))
        last_seen = self.last_frame
        self._idle_since = time.monotonic()
        while True:
            await asyncio.sleep(step)
            now = time.monotonic()
            if self.gate.blocked or self.last_frame != last_seen:
                # a frame arrived, or we are the ones not reading (back-pressure): not the feed's fault
                last_seen = self.last_frame
                self._idle_since = now
                continue
            if now - self._idle_since >= limit:
                self._stale = True
                log.warning("%s: no frame for %.1fs: reconnecting", self.name, now - self._idle_since)
                self.handler.on_event(
                    self,
                    ConnEvent(
                        "stale_feed",
                        f"no frame for {limit:g}s",
                        ",".join(self.spec.channels),
                        None,
                        self.last_frame,
                    ),
                )
                reader.cancel()
                return

    async def _pinger(self) -> None:
        while True:
            await asyncio.sleep(self.options.ping_seconds)
            if self._outbox is not None:
                self._outbox.put_nowait(messages.request("ping", None, self._next_id()))

    async def _writer(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        outbox = self._outbox
        assert outbox is not None  # set by _one_session before this task starts
        while True:
            text = await outbox.get()
            await ws.send_str(text)

    async def _subscribe_all(self) -> None:
        # give transient rejections of the previous session another chance
        for sub, retry in self._retry_later.items():
            wanted = self._wanted.setdefault(sub, [])
            wanted.extend(s for s in sorted(retry) if s not in wanted)
        self._retry_later.clear()
        for sub, syms in list(self._wanted.items()):
            if not sub.symbols:
                self._send("subscribe", sub, None)
                continue
            if not syms:
                continue
            if sub.channel == "level3":
                await self._subscribe_paced(sub, list(syms))
                continue
            for chunk in _chunks(list(syms), self.options.symbols_per_request):
                self._send("subscribe", sub, list(chunk))

    async def _subscribe_paced(self, sub: Subscription, syms: list[str]) -> None:
        """Level3 subscriptions spend a per-second rate counter (cost by depth, reference §3.5)."""
        cost = L3_COST.get(int(dict(sub.params).get("depth", 10)), 5)
        per_second = max(1, self.options.l3_rate // cost)
        for i, chunk in enumerate(_chunks(syms, per_second)):
            if i:
                await asyncio.sleep(1.0)
            self._send("subscribe", sub, list(chunk))

    def _next_id(self) -> int:
        # req_id must stay a signed 32-bit integer (reference §1.2)
        self._req_id = self._req_id + 1 if self._req_id < 2**31 - 1 else 1
        return self._req_id

    def _send(self, method: str, sub: Subscription, symbols: list[str] | None) -> None:
        if self._outbox is None:
            return
        req_id = self._next_id()
        self._pending[req_id] = _Request(method, sub, set(symbols or ()))
        self._outbox.put_nowait(messages.request(method, sub.request(method, symbols, self._token), req_id))

    # ----------------------------------------------------------------------------------------- acks

    def _on_ack(self, ack: Ack) -> None:
        req = self._pending.get(ack.req_id) if ack.req_id is not None else None
        if req is None:
            if not ack.success:
                log.warning("%s: error response to an unknown request: %s", self.name, ack.error)
            return
        sub = req.sub
        if req.method == "unsubscribe":
            # "Subscription Not Found" is reported with method `subscribe` (reference §1.5): ignore it
            req.symbols.discard(ack.symbol or "")
            if not req.symbols:
                self._pending.pop(ack.req_id, None)  # type: ignore[arg-type]
            return
        if ack.success:
            self.active.add((sub.channel, ack.symbol, sub.interval))
            req.symbols.discard(ack.symbol or "")
            if not req.symbols:
                self._pending.pop(ack.req_id, None)  # type: ignore[arg-type]
            return
        error = ack.error or "rejected"
        if "Already subscribed" in error:
            req.symbols.discard(ack.symbol or "")
            return
        if sub.symbols:
            rejected = [ack.symbol] if ack.symbol in req.symbols else sorted(req.symbols)
        else:
            rejected = [None]  # type: ignore[list-item]
        permanent = is_permanent_rejection(error)
        for symbol in rejected:
            if symbol is not None:
                req.symbols.discard(symbol)
                wanted = self._wanted.get(sub, [])
                if symbol in wanted:
                    wanted.remove(symbol)
                    if not permanent:
                        self._retry_later.setdefault(sub, set()).add(symbol)
            elif sub in self._wanted and not permanent:
                pass  # a symbol-less channel is re-requested at every reconnect anyway
            log.warning(
                "%s: subscription %s %s rejected: %s (%s)",
                self.name,
                sub.channel,
                symbol or "",
                error,
                "skipped" if permanent else "retried after the next reconnect",
            )
            self.handler.on_event(
                self,
                ConnEvent(
                    "subscribe_rejected",
                    f"{error} ({'skipped' if permanent else 'retry after reconnect'})",
                    sub.channel,
                    symbol,
                ),
            )
        if not req.symbols:
            self._pending.pop(ack.req_id, None)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return f"Connection({self.name!r}, {self.spec.url!r})"


def _short(exc: BaseException | None) -> str:
    if exc is None:
        return "?"
    text = str(exc) or type(exc).__name__
    return text if len(text) < 200 else text[:200] + "…"


def describe(specs: Sequence[ConnectionSpec]) -> str:
    """One line for the log: how the subscriptions were spread."""
    parts = []
    for s in specs:
        parts.append(f"{s.name}[{','.join(s.channels)}; {len(s.symbols)} symbols]")
    return " ".join(parts)


def subscription_keys(specs: Sequence[ConnectionSpec]) -> Mapping[str, int]:
    """Number of (channel, symbol) subscriptions per channel, for the startup log."""
    counts: dict[str, int] = {}
    for spec in specs:
        for sub in spec.subscriptions:
            counts[sub.channel] = counts.get(sub.channel, 0) + max(1, len(sub.symbols))
    return counts
