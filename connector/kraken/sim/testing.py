"""Small helpers for tests that talk to the simulator: an asyncio client, token fetching, a runner.

`run(coro)` runs a test scenario under a timeout without needing a pytest asyncio plugin;
`SimClient` wraps a websockets client connection, keeps the raw text of every frame and decodes
numbers exactly (`Num` tokens); `fetch_token` signs a GetWebSocketsToken request like a real client.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import aiohttp
from websockets.asyncio.client import ClientConnection, connect

from .config import DEFAULT_API_KEY, DEFAULT_API_SECRET, TOKEN_PATH
from .rest import sign
from .wire import loads_exact

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T], timeout: float = 20.0) -> T:
    """asyncio.run with a timeout, for synchronous test functions."""

    async def guarded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(guarded())


class SimClient:
    """A test client: `async with SimClient(url) as c: await c.subscribe({...})`.

    Messages skipped by `until` / `collect` / `subscribe` are not lost: they stay queued, in order,
    for the next `recv`. `raw` holds the text of every frame received from the socket.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.ws: ClientConnection | None = None
        self.raw: list[str] = []
        self._pending: deque[str] = deque()
        self._req = 0

    async def __aenter__(self) -> SimClient:
        # Unbounded receive queue: a test that reads only some of its connections must still be able
        # to close them all cleanly (a full queue would stop reading the close handshake).
        self.ws = await connect(
            self.url, compression=None, max_size=2**24, max_queue=None, ping_interval=None, close_timeout=2
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.ws is not None:
            await self.ws.close()

    async def send(self, msg: dict[str, Any]) -> int:
        """Send a request; gives it a req_id if it has none; returns the req_id."""
        assert self.ws is not None
        if "req_id" not in msg and msg.get("method") != "ping":
            self._req += 1
            msg = {**msg, "req_id": self._req}
        await self.ws.send(json.dumps(msg))
        return int(msg.get("req_id", 0))

    async def _socket_text(self, timeout: float) -> str:
        assert self.ws is not None
        async with asyncio.timeout(timeout):
            data = await self.ws.recv()
        text = data if isinstance(data, str) else data.decode()
        self.raw.append(text)
        return text

    async def recv_text(self, timeout: float = 5.0) -> str:
        if self._pending:
            return self._pending.popleft()
        return await self._socket_text(timeout)

    async def recv(self, timeout: float = 5.0) -> Any:
        return loads_exact(await self.recv_text(timeout))

    async def collect(self, pred: Callable[[Any], bool], n: int, timeout: float = 10.0) -> list[Any]:
        """The next `n` messages satisfying `pred`; the others stay queued for `recv`."""
        out: list[Any] = []
        keep: deque[str] = deque()
        deadline = time.monotonic() + timeout
        try:
            while self._pending and len(out) < n:
                text = self._pending.popleft()
                msg = loads_exact(text)
                (out.append(msg) if pred(msg) else keep.append(text))
            while len(out) < n:
                text = await self._socket_text(max(0.01, deadline - time.monotonic()))
                msg = loads_exact(text)
                (out.append(msg) if pred(msg) else keep.append(text))
        finally:
            keep.extend(self._pending)
            self._pending = keep
        return out

    async def until(self, pred: Callable[[Any], bool], timeout: float = 5.0) -> Any:
        """The next message satisfying `pred` (the others stay queued)."""
        return (await self.collect(pred, 1, timeout))[0]

    async def drain_pending(self) -> list[Any]:
        """Messages skipped so far, removed from the queue."""
        out = [loads_exact(t) for t in self._pending]
        self._pending.clear()
        return out

    async def subscribe(self, params: dict[str, Any], acks: int = 1, timeout: float = 5.0) -> list[Any]:
        """Subscribe and wait for `acks` replies to this request (one per symbol)."""
        req_id = await self.send({"method": "subscribe", "params": params})
        return await self.collect(lambda m: isinstance(m, dict) and m.get("req_id") == req_id, acks, timeout)


def is_channel(channel: str, kind: str | None = None) -> Callable[[Any], bool]:
    return lambda m: (
        isinstance(m, dict) and m.get("channel") == channel and (kind is None or m.get("type") == kind)
    )


async def fetch_token(
    rest_url: str,
    api_key: str = DEFAULT_API_KEY,
    api_secret: str = DEFAULT_API_SECRET,
    nonce: int | None = None,
) -> dict[str, Any]:
    """POST a signed GetWebSocketsToken (form body, as ccxt does) and return the JSON reply."""
    n = nonce if nonce is not None else time.time_ns() // 1000
    body = urllib.parse.urlencode({"nonce": n})
    headers = {
        "API-Key": api_key,
        "API-Sign": sign(api_secret, TOKEN_PATH, n, body),
        "Content-Type": "application/x-www-form-urlencoded",
    }
    async with (
        aiohttp.ClientSession() as session,
        session.post(rest_url + TOKEN_PATH, data=body, headers=headers) as resp,
    ):
        result: dict[str, Any] = await resp.json()
        return result


async def wait_for(
    pred: Callable[[], bool | Awaitable[bool]], timeout: float = 5.0, step: float = 0.005
) -> None:
    """Poll a condition (e.g. a simulator counter) until true, or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if not isinstance(value, bool):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(step)
