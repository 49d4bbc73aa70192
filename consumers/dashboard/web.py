"""Web side of `kracked dashboard`: an aiohttp server with the page, its static files and a WebSocket.

`GET /` is the page, `/static/*` its hand-written JS/CSS (no CDN: it works offline), `GET /ws` the live
feed, `GET /state` a small JSON summary (symbols, sizes, consumer state). The page says which symbols
it shows (`{"op": "open", "symbols": [...]}`); the server answers with a full snapshot of each newly
opened symbol, then sends that symbol's coalesced deltas (at most `max_push_hz` per symbol) and the
page-wide messages (symbol list, health, orders). Each page has a bounded send queue: a page that
cannot keep up has its queue dropped and gets fresh snapshots instead, so it is never behind by
more than one snapshot and the server's memory stays bounded.

`Dashboard` wires the Kafka reader, the state and the server; `BackgroundDashboard` runs it in a
thread with its own event loop (tests, or embedding it in a synchronous program).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from dataclasses import asdict
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from consumers.dashboard.domain import GLOBAL, DashboardState
from consumers.dashboard.service import TopicReader
from consumers.dashboard.settings import DashboardSettings
from kracked.errors import ConfigError
from kracked.settings import KafkaSettings

log = logging.getLogger(__name__)

QUEUE_SIZE = 256  # messages waiting for one page before it is resynced by snapshots instead
MAX_OPEN_SYMBOLS = 64
_RESYNC = object()


def now_us() -> int:
    return time.time_ns() // 1000


def static_dir() -> Path:
    return Path(str(resources.files("consumers.dashboard").joinpath("static")))


def encode(msg: dict[str, Any], now: int) -> str:
    return json.dumps({**msg, "now": now}, separators=(",", ":"))


class Page:
    """One connected page: its open symbols and its bounded outgoing queue."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.symbols: set[str] = set()
        self.queue: asyncio.Queue[object] = asyncio.Queue(QUEUE_SIZE)
        self.resyncs = 0

    def offer(self, item: object) -> None:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            # the page fell behind: what is queued is stale anyway, send the latest state instead
            while not self.queue.empty():
                self.queue.get_nowait()
            self.resyncs += 1
            self.queue.put_nowait(_RESYNC)


class DashboardServer:
    """The aiohttp application around a `DashboardState` guarded by `lock`."""

    def __init__(
        self, state: DashboardState, lock: threading.Lock, settings: DashboardSettings, prefix: str = ""
    ) -> None:
        self.state = state
        self.lock = lock
        self.settings = settings
        self.prefix = prefix
        self.pages: set[Page] = set()
        self.tick_s = min(0.05, 0.5 / settings.max_push_hz)
        self._runner: web.AppRunner | None = None
        self._pump: asyncio.Task[None] | None = None
        self.port = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self._index)
        app.router.add_get("/ws", self._websocket)
        app.router.add_get("/state", self._state)
        app.router.add_static("/static/", static_dir(), append_version=False)
        return app

    async def start(self) -> int:
        """Serve on the configured host/port; returns the bound port (port 0 = any free one)."""
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.host, self.settings.port)
        await site.start()
        addresses = self._runner.addresses
        self.port = int(addresses[0][1]) if addresses else self.settings.port
        self._pump = asyncio.create_task(self._push_loop())
        log.info("dashboard on http://%s:%d/", self.settings.host, self.port)
        return self.port

    async def stop(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
        for page in list(self.pages):
            await page.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # ---- handlers ----------------------------------------------------------------------------
    async def _index(self, _request: web.Request) -> web.StreamResponse:
        return web.FileResponse(static_dir() / "index.html", headers={"Cache-Control": "no-cache"})

    async def _state(self, _request: web.Request) -> web.Response:
        with self.lock:
            body = {
                "sizes": self.state.sizes(),
                "consumer": dict(self.state.health.consumer),
                "symbols": self.state.symbols(),
                "pages": len(self.pages),
                "prefix": self.prefix,
            }
        return web.json_response(body)

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(heartbeat=20, max_msg_size=64 * 1024)
        await ws.prepare(request)
        page = Page(ws)
        self.pages.add(page)
        sender = asyncio.create_task(self._send_loop(page))
        with self.lock:
            hello = self.state.global_snapshot()
        hello.update(
            limits=asdict(self.state.limits), max_push_hz=self.settings.max_push_hz, prefix=self.prefix
        )
        page.offer(encode(hello, now_us()))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self._on_page_message(page, msg.data)
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            self.pages.discard(page)
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
        return ws

    def _on_page_message(self, page: Page, data: str) -> None:
        try:
            msg = json.loads(data)
        except ValueError:
            return
        if not isinstance(msg, dict) or msg.get("op") != "open" or not isinstance(msg.get("symbols"), list):
            return
        wanted = {s for s in msg["symbols"][:MAX_OPEN_SYMBOLS] if isinstance(s, str)}
        new = sorted(wanted - page.symbols)
        page.symbols = wanted
        now = now_us()
        for symbol in new:
            with self.lock:
                snap = self.state.snapshot(symbol)
            if snap is not None:
                page.offer(encode(snap, now))

    async def _send_loop(self, page: Page) -> None:
        while True:
            item = await page.queue.get()
            if item is _RESYNC:
                for text in self._resync_messages(page):
                    await page.ws.send_str(text)
            elif isinstance(item, str):
                await page.ws.send_str(item)

    def _resync_messages(self, page: Page) -> list[str]:
        now = now_us()
        with self.lock:
            msgs = [self.state.global_snapshot()]
            msgs += [s for s in (self.state.snapshot(sym) for sym in sorted(page.symbols)) if s is not None]
        return [encode(m, now) for m in msgs]

    async def _push_loop(self) -> None:
        """Every tick: collect what is due (coalesced in the state) and fan it out to the pages."""
        while True:
            await asyncio.sleep(self.tick_s)
            now = now_us()
            with self.lock:
                pushes = self.state.collect(now)
            if not pushes or not self.pages:
                continue
            encoded = [(key, encode(msg, now)) for key, msg in pushes]
            for page in list(self.pages):
                for key, text in encoded:
                    if key == GLOBAL or key in page.symbols:
                        page.offer(text)


class Dashboard:
    """Reader thread + state + web server: `await start()` → port, `await stop()`."""

    def __init__(
        self, kafka: KafkaSettings, settings: DashboardSettings, group_id: str | None = None
    ) -> None:
        self.kafka = kafka
        self.settings = settings
        self.lock = threading.Lock()
        self.state = DashboardState(settings.limits(), settings.max_push_hz)
        self.reader = TopicReader(kafka, settings, self.state, self.lock, group_id)
        self.server = DashboardServer(self.state, self.lock, settings, kafka.topic_prefix)

    async def start(self) -> int:
        try:
            port = await self.server.start()
        except OSError as exc:
            raise ConfigError(
                f"dashboard cannot listen on {self.settings.host}:{self.settings.port}: {exc.strerror or exc}"
            ) from None
        self.reader.start()
        return port

    async def stop(self) -> None:
        await self.server.stop()
        await asyncio.get_running_loop().run_in_executor(None, self.reader.stop)


class BackgroundDashboard:
    """A `Dashboard` on its own event loop in a daemon thread: `start()` → port, `stop()`."""

    def __init__(
        self, kafka: KafkaSettings, settings: DashboardSettings, group_id: str | None = None
    ) -> None:
        self.dashboard = Dashboard(kafka, settings, group_id)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="dashboard-web", daemon=True)
        self.port = 0

    def start(self, timeout: float = 30.0) -> int:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self.dashboard.start(), self._loop)
        self.port = future.result(timeout)
        return self.port

    def stop(self, timeout: float = 30.0) -> None:
        future = asyncio.run_coroutine_threadsafe(self.dashboard.stop(), self._loop)
        try:
            future.result(timeout)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)
            self._loop.close()

    def __enter__(self) -> BackgroundDashboard:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
