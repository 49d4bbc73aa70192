"""`kracked sim`: the local Kraken v2 WebSocket + REST token simulator (in-process API and CLI).

One WebSocket port serves three endpoints, mirroring Kraken's three hosts (reference §1.1):
`ws://HOST:PORT/v2` (public), `ws://HOST:PORT/auth/v2` (executions, balances + public channels) and
`ws://HOST:PORT/l3/v2` (level3); a second port serves REST (`POST /0/private/GetWebSocketsToken`).
Tests use `async with Simulator(config) as sim` (or `SimThread` from synchronous code); the CLI
prints the four URLs as `KRACKED_KRAKEN_*=` lines (the connector's own settings) and runs until
SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import threading
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from http import HTTPStatus
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from kracked.errors import ConfigError
from kracked.logs import setup_logging

from .config import AUTH_PATH, BOOK_DEPTHS, L3_PATH, PUBLIC_PATH, FaultConfig, SimConfig
from .faults import MALFORMED_BY_KIND
from .feed import Feed
from .instruments import Instruments
from .market import Market, Trade
from .replay import ReplayFeed
from .rest import RestRecord, RestServer, TokenStore
from .session import Frame, Session
from .synthetic import SyntheticFeed
from .wire import dumps

log = logging.getLogger("kracked.sim")

T = TypeVar("T")


@dataclass
class SimStats:
    """Counters for tests and logs. Trade ids are recorded per symbol in delivery order."""

    connections_total: int = 0
    connections_open: int = 0
    frames_sent: int = 0  # data frames written (all connections)
    control_frames: int = 0  # status, heartbeat, acks, errors, pongs
    bytes_sent: int = 0
    subscriptions: int = 0
    errors_sent: int = 0
    trades_sent: int = 0
    by_channel: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    trade_ids_sent: dict[str, deque[int]] = field(default_factory=dict)
    trade_ids_withheld: dict[str, list[int]] = field(default_factory=dict)
    history: int = 1_000_000

    def delivered(self, frame: Frame, nbytes: int) -> None:
        self.frames_sent += 1
        self.bytes_sent += nbytes
        self.by_channel[frame.channel] += 1
        if frame.trade_ids and frame.symbol is not None:
            self.trades_sent += len(frame.trade_ids)
            ids = self.trade_ids_sent.get(frame.symbol)
            if ids is None:
                ids = self.trade_ids_sent[frame.symbol] = deque(maxlen=self.history)
            ids.extend(frame.trade_ids)

    def withhold(self, frame: Frame) -> None:
        if frame.symbol is not None:
            self.trade_ids_withheld.setdefault(frame.symbol, []).extend(frame.trade_ids)

    def control(self, nbytes: int) -> None:
        self.control_frames += 1
        self.bytes_sent += nbytes

    def count_fault(self, kind: str) -> None:
        self.faults[kind] += 1


class Simulator:
    """The simulator, run on the current asyncio loop: `async with Simulator(cfg) as sim: ...`."""

    def __init__(self, config: SimConfig | None = None, **overrides: Any) -> None:
        cfg = replace(config or SimConfig(), **overrides)
        cfg.validate()
        self.config = cfg
        self.instruments = Instruments(cfg.instruments_file)
        self.tokens = TokenStore(cfg.token_ttl)
        self.rest = RestServer(cfg, self.tokens)
        self.stats = SimStats(history=cfg.max_trade_history)
        self.sessions: set[Session] = set()
        self.reject_symbols: set[str] = set(cfg.faults.reject_symbols)
        self.system_status = cfg.system_status
        self.port = 0
        self._feed: Feed | None = None
        self._server: Server | None = None
        self._feed_task: asyncio.Task[None] | None = None
        self._index = 0

    # --- URLs -------------------------------------------------------------------------------------

    @property
    def ws_url(self) -> str:
        return f"ws://{self.config.host}:{self.port}{PUBLIC_PATH}"

    @property
    def auth_ws_url(self) -> str:
        return f"ws://{self.config.host}:{self.port}{AUTH_PATH}"

    @property
    def l3_ws_url(self) -> str:
        return f"ws://{self.config.host}:{self.port}{L3_PATH}"

    @property
    def rest_url(self) -> str:
        return f"http://{self.config.host}:{self.rest.port}"

    @property
    def rest_port(self) -> int:
        return self.rest.port

    @property
    def token_url(self) -> str:
        return f"{self.rest_url}/0/private/GetWebSocketsToken"

    @property
    def feed(self) -> Feed:
        if self._feed is None:
            raise RuntimeError("simulator not started")
        return self._feed

    @property
    def market(self) -> Market | None:
        """The synthetic market (None in replay mode)."""
        return self._feed.market if isinstance(self._feed, SyntheticFeed) else None

    @property
    def rest_requests(self) -> list[RestRecord]:
        return self.rest.requests

    # --- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> Simulator:
        cfg = self.config
        self._feed = ReplayFeed(self) if cfg.replay_mode else SyntheticFeed(self)
        self._server = await serve(
            self._handler,
            cfg.host,
            cfg.port,
            process_request=self._route,
            compression=None,  # Kraken frames are small; deflate would cost more than it saves locally
            max_size=2**20,
            ping_interval=None,  # a stall fault must silence the server completely
            write_limit=2**20,
        )
        self.port = self._server.sockets[0].getsockname()[1] if self._server.sockets else cfg.port
        await self.rest.start(cfg.host, cfg.rest_port)
        self._feed_task = asyncio.create_task(self._feed.run(), name="sim-feed")
        log.info(
            "simulator up: %s mode, ws port %d, rest port %d",
            "replay" if cfg.replay_mode else "synthetic",
            self.port,
            self.rest.port,
        )
        return self

    async def stop(self) -> None:
        if self._feed_task is not None:
            self._feed_task.cancel()
            await asyncio.gather(self._feed_task, return_exceptions=True)
            self._feed_task = None
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        await self.rest.stop()
        log.info("simulator stopped")

    async def __aenter__(self) -> Simulator:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def _route(self, connection: ServerConnection, request: Request) -> Response | None:
        path = urlsplit(request.path).path
        if path not in (PUBLIC_PATH, AUTH_PATH, L3_PATH):
            return connection.respond(
                HTTPStatus.NOT_FOUND, f"no endpoint at {path}; use {PUBLIC_PATH}, {AUTH_PATH} or {L3_PATH}\n"
            )
        return None

    async def _handler(self, ws: ServerConnection) -> None:
        self._index += 1
        path = urlsplit(ws.request.path).path if ws.request is not None else PUBLIC_PATH
        session = Session(self, ws, path, self._index)
        self.sessions.add(session)
        self.stats.connections_total += 1
        self.stats.connections_open += 1
        log.info("connection #%d opened on %s (%d open)", session.index, path, self.stats.connections_open)
        try:
            await session.run()
        finally:
            self.sessions.discard(session)
            self.stats.connections_open -= 1
            log.info("connection #%d closed (%d open)", session.index, self.stats.connections_open)

    # --- control messages -------------------------------------------------------------------------

    def status_text(self, conn_id: int) -> str:
        """The `status` message (reference §1.8), field order as in real captures."""
        return dumps(
            {
                "channel": "status",
                "type": "update",
                "data": [
                    {
                        "version": self.config.version,
                        "system": self.system_status,
                        "api_version": "v2",
                        "connection_id": conn_id,
                    }
                ],
            }
        )

    def set_system_status(self, status: str) -> None:
        """Change the engine status (online, maintenance, cancel_only, post_only) and tell everyone."""
        self.system_status = status
        self.rest.system_status = status
        for s in list(self.sessions):
            s.push_text(self.status_text(s.conn_id))
        log.info("system status -> %s", status)

    # --- data for tests ---------------------------------------------------------------------------

    def trade_history(self, symbol: str) -> list[Trade]:
        """Every trade the synthetic market made for `symbol` (up to max_trade_history), in order."""
        market = self.market
        if market is None:
            raise RuntimeError("no market in replay mode")
        return list(market.symbols[symbol].trades)

    def trades_sent(self, symbol: str) -> list[int]:
        """Trade ids delivered to clients for `symbol` (all connections, in delivery order)."""
        return list(self.stats.trade_ids_sent.get(symbol, ()))

    # --- one-off fault triggers (tests) -----------------------------------------------------------

    def _targets(self, endpoint: str | None) -> list[Session]:
        return [s for s in self.sessions if endpoint is None or s.endpoint == endpoint]

    def drop_connections(self, endpoint: str | None = None) -> int:
        """Close TCP (no close frame) on every connection (of "public", "auth" or "l3")."""
        targets = self._targets(endpoint)
        for s in targets:
            self.stats.count_fault("drop")
            s.abort()
        log.info("fault: dropped %d connections", len(targets))
        return len(targets)

    def stall(self, seconds: float, endpoint: str | None = None) -> int:
        """Stop writing anything (heartbeats included) to every connection for `seconds`."""
        targets = self._targets(endpoint)
        for s in targets:
            s.stall(seconds)
        return len(targets)

    def inject_malformed(self, kind: str = "invalid_json", endpoint: str | None = None) -> int:
        """Send one malformed frame now: kind "invalid_json" or "unknown_shape"."""
        data = MALFORMED_BY_KIND[kind]
        targets = self._targets(endpoint)
        for s in targets:
            self.stats.count_fault("malformed_" + kind)
            s.push(Frame(data, ""))
        return len(targets)

    def corrupt_next_checksum(self, symbol: str | None = None, endpoint: str | None = None) -> int:
        """The next book/level3 frame (of `symbol`) to each connection carries a wrong checksum."""
        targets = self._targets(endpoint)
        for s in targets:
            s.faults.armed_bad_checksum.append(symbol)
        return len(targets)

    def skip_next_trade(self, symbol: str | None = None, endpoint: str | None = None) -> int:
        """The next trade frame (of `symbol`) to each connection is withheld: its trade_id goes missing."""
        targets = self._targets(endpoint)
        for s in targets:
            s.faults.armed_trade_gap.append(symbol)
        return len(targets)


class SimThread:
    """Runs a Simulator on its own event loop in a daemon thread, for synchronous tests and scripts."""

    def __init__(self, config: SimConfig | None = None, **overrides: Any) -> None:
        self.sim = Simulator(config, **overrides)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None

    def _main(self) -> None:
        async def body() -> None:
            self._stop = asyncio.Event()
            self._loop = asyncio.get_running_loop()
            try:
                await self.sim.start()
            except BaseException as exc:
                self._error = exc
                self._ready.set()
                return
            self._ready.set()
            try:
                await self._stop.wait()
            finally:
                await self.sim.stop()

        asyncio.run(body())

    def start(self, timeout: float = 10.0) -> Simulator:
        self._thread = threading.Thread(target=self._main, name="kracked-sim", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("simulator did not start")
        if self._error is not None:
            raise self._error
        return self.sim

    def call(self, fn: Callable[..., T], *args: Any, timeout: float = 10.0) -> T:
        """Run `fn(*args)` on the simulator's loop (e.g. a fault trigger) and return its result."""
        if self._loop is None:
            raise RuntimeError("simulator thread not started")

        async def run() -> T:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        if self._loop is not None and self._stop is not None and self._thread is not None:
            if self._thread.is_alive():
                self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(timeout)
        self._loop = None

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def ws_url(self) -> str:
        return self.sim.ws_url

    @property
    def auth_ws_url(self) -> str:
        return self.sim.auth_ws_url

    @property
    def l3_ws_url(self) -> str:
        return self.sim.l3_ws_url

    @property
    def rest_url(self) -> str:
        return self.sim.rest_url


# --- command line ---------------------------------------------------------------------------------


def _rate(text: str) -> float | None:
    if text.lower() in ("max", "0", "0.0"):
        return None
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("rate must be > 0, 0 or 'max'")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="kracked sim",
        description="Local Kraken WebSocket v2 + REST token simulator (synthetic market or capture replay).",
    )
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="WebSocket port for /v2, /auth/v2, /l3/v2 (0 = any)")
    p.add_argument("--rest-port", type=int, default=0, help="REST port (0 = any)")
    p.add_argument(
        "--symbols",
        default=os.environ.get("KRACKED_SYMBOLS") or "BTC/USD,ETH/USD",
        help="comma-separated BASE/QUOTE symbols (default $KRACKED_SYMBOLS or BTC/USD,ETH/USD)",
    )
    p.add_argument("--seed", type=int, default=1, help="market seed (same seed, same market)")
    p.add_argument(
        "--rate", type=_rate, default=10.0, help="events/s per symbol; 0 or 'max' = as fast as read"
    )
    p.add_argument("--replay", type=Path, nargs="+", default=[], metavar="FILE", help="replay capture files")
    p.add_argument("--replay-loop", action="store_true", help="restart a replayed stream when it ends")
    p.add_argument("--book-depth-default", type=int, default=10, choices=BOOK_DEPTHS)
    p.add_argument("--heartbeat-interval", type=float, default=1.0, help="seconds between heartbeats")
    p.add_argument(
        "--instruments", type=Path, default=None, help="instrument snapshot JSON (default: bundled)"
    )
    p.add_argument(
        "--drop-every", type=int, default=0, metavar="N", help="drop TCP after every N data frames"
    )
    p.add_argument("--drop-rate", type=float, default=0.0, metavar="P")
    p.add_argument("--stall-every", type=int, default=0, metavar="N", help="stall after every N data frames")
    p.add_argument("--stall-rate", type=float, default=0.0, metavar="P")
    p.add_argument("--stall-seconds", type=float, default=2.0, metavar="S")
    p.add_argument("--malformed-every", type=int, default=0, metavar="N")
    p.add_argument("--malformed-rate", type=float, default=0.0, metavar="P")
    p.add_argument("--bad-checksum-every", type=int, default=0, metavar="N")
    p.add_argument("--bad-checksum-rate", type=float, default=0.0, metavar="P")
    p.add_argument("--trade-gap-every", type=int, default=0, metavar="N")
    p.add_argument("--trade-gap-rate", type=float, default=0.0, metavar="P")
    p.add_argument("--reject-symbols", default="", help="comma-separated symbols whose subscribe fails")
    p.add_argument(
        "--metrics-port", type=int, default=None, help="serve Prometheus metrics on 127.0.0.1:PORT"
    )
    p.add_argument(
        "--log-level", default=None, help="DEBUG, INFO, WARNING (default $KRACKED_LOG_LEVEL or INFO)"
    )
    return p


def config_from_args(args: argparse.Namespace) -> SimConfig:
    def split(text: str) -> tuple[str, ...]:
        return tuple(s.strip() for s in text.split(",") if s.strip())

    faults = FaultConfig(
        drop_every=args.drop_every,
        drop_rate=args.drop_rate,
        stall_every=args.stall_every,
        stall_rate=args.stall_rate,
        stall_seconds=args.stall_seconds,
        malformed_every=args.malformed_every,
        malformed_rate=args.malformed_rate,
        bad_checksum_every=args.bad_checksum_every,
        bad_checksum_rate=args.bad_checksum_rate,
        trade_gap_every=args.trade_gap_every,
        trade_gap_rate=args.trade_gap_rate,
        reject_symbols=frozenset(split(args.reject_symbols)),
    )
    extra: dict[str, Any] = {}
    # The same credentials as the connector's, when set, so both sides agree without extra flags.
    if os.environ.get("KRACKED_KRAKEN_API_KEY") and os.environ.get("KRACKED_KRAKEN_API_SECRET"):
        extra["api_key"] = os.environ["KRACKED_KRAKEN_API_KEY"]
        extra["api_secret"] = os.environ["KRACKED_KRAKEN_API_SECRET"]
    cfg = SimConfig(
        host=args.host,
        port=args.port,
        rest_port=args.rest_port,
        symbols=split(args.symbols),
        seed=args.seed,
        rate=args.rate,
        replay=tuple(args.replay),
        replay_loop=args.replay_loop,
        book_depth_default=args.book_depth_default,
        heartbeat_interval=args.heartbeat_interval,
        instruments_file=args.instruments,
        faults=faults,
        **extra,
    )
    try:
        cfg.validate()
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return cfg


def _serve_metrics(sim: Simulator, port: int) -> None:
    from prometheus_client import CollectorRegistry, Gauge, start_http_server

    registry = CollectorRegistry()
    for name, doc, fn in (
        ("kracked_sim_connections_open", "open WebSocket connections", lambda: sim.stats.connections_open),
        ("kracked_sim_frames_sent", "data frames written", lambda: sim.stats.frames_sent),
        ("kracked_sim_bytes_sent", "bytes written", lambda: sim.stats.bytes_sent),
        ("kracked_sim_trades_sent", "trades delivered", lambda: sim.stats.trades_sent),
        ("kracked_sim_faults", "faults injected", lambda: sum(sim.stats.faults.values())),
    ):
        Gauge(name, doc, registry=registry).set_function(fn)
    start_http_server(port, addr="127.0.0.1", registry=registry)


async def _run(cfg: SimConfig, metrics_port: int | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        sim = Simulator(cfg)
        await sim.start()
    except OSError as exc:
        raise ConfigError(f"cannot bind: {exc}") from None
    try:
        if metrics_port is not None:
            _serve_metrics(sim, metrics_port)
        print(f"KRACKED_KRAKEN_WS_URL={sim.ws_url}")
        print(f"KRACKED_KRAKEN_WS_AUTH_URL={sim.auth_ws_url}")
        print(f"KRACKED_KRAKEN_WS_L3_URL={sim.l3_ws_url}")
        print(f"KRACKED_KRAKEN_REST_URL={sim.rest_url}", flush=True)
        await stop.wait()
        log.info("stop requested")
    finally:
        await sim.stop()


def main(argv: Sequence[str]) -> int:
    """`kracked sim [options]`: serve until SIGTERM/SIGINT; prints the URLs, one per line."""
    args = build_parser().parse_args(list(argv))
    setup_logging(args.log_level)
    cfg = config_from_args(args)
    asyncio.run(_run(cfg, args.metrics_port))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
