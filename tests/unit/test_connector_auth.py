"""connector.kraken.auth: Kraken's API-Sign, the token request, and secrets that never show."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import parse_qs

import pytest
from aiohttp import web

from connector.kraken.auth import AuthError, Credentials, Nonce, fetch_ws_token, sign

T = TypeVar("T")
SECRET = "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg=="


def test_official_signature_vector() -> None:
    body = "nonce=1616492376594&ordertype=limit&pair=XBTUSD&price=37500&type=buy&volume=1.25"
    assert (
        sign("/0/private/AddOrder", 1616492376594, body, SECRET)
        == "4/dpxb3iT4tp/ZCVEwSnEsLxx0bqyhLpdfOpc6fn7OR8+UClSV5n9E6aSS8MPtnRfp32bAb0nmbRn6H8ndwLUQ=="
    )


def test_credentials_never_show_the_secret() -> None:
    creds = Credentials("my-api-key-123", SECRET)
    for text in (repr(creds), str(creds), f"{creds}", repr([creds])):
        assert "my-api-key-123" not in text and SECRET not in text
    with pytest.raises(ValueError, match="base64") as info:
        Credentials("k", "not base64!!")
    assert "not base64!!" not in str(info.value)


def test_nonce_always_increases() -> None:
    nonce = Nonce()
    values = [nonce.next() for _ in range(1000)]
    assert values == sorted(set(values))


Reply = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Rest:
    """A local REST server that records token requests; each test sets the reply."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.seen: list[dict[str, Any]] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> Rest:
        async def token(request: web.Request) -> web.StreamResponse:
            body = await request.text()
            self.seen.append({"path": request.path, "headers": dict(request.headers), "body": body})
            return await self.reply(request)

        app = web.Application()
        app.router.add_post("/0/private/GetWebSocketsToken", token)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


def run(coro: Awaitable[T]) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro, 30)

    return asyncio.run(bounded())


def test_token_request_is_signed_and_returns_the_token() -> None:
    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"error": [], "result": {"token": "TOKEN-1", "expires": 900}})

    async def body() -> Rest:
        async with Rest(ok) as rest:
            creds = Credentials("key-1", SECRET)
            assert await fetch_ws_token(rest.url, creds) == "TOKEN-1"
            await fetch_ws_token(rest.url, creds)
            return rest

    rest = run(body())
    req = rest.seen[0]
    assert req["path"] == "/0/private/GetWebSocketsToken"
    assert req["headers"]["API-Key"] == "key-1"
    nonce = parse_qs(req["body"])["nonce"][0]
    digest = hashlib.sha256((nonce + req["body"]).encode()).digest()
    expected = hmac.new(base64.b64decode(SECRET), b"/0/private/GetWebSocketsToken" + digest, hashlib.sha512)
    assert req["headers"]["API-Sign"] == base64.b64encode(expected.digest()).decode()
    # the second call (a reconnect) fetched anew, with a larger nonce
    assert int(parse_qs(rest.seen[1]["body"])["nonce"][0]) > int(nonce)


@pytest.mark.parametrize(
    ("status", "payload", "transient", "text"),
    [
        (200, {"error": ["EAPI:Invalid key"]}, False, "Invalid key"),
        (200, {"error": ["EGeneral:Permission denied"]}, False, "Permission denied"),
        (200, {"error": ["EAPI:Rate limit exceeded"]}, True, "Rate limit"),
        (503, {"error": []}, True, "HTTP 503"),
        (403, {"error": []}, False, "HTTP 403"),
        (200, {"error": [], "result": {}}, True, "no token"),
    ],
)
def test_token_errors(status: int, payload: Any, transient: bool, text: str) -> None:
    async def reply(request: web.Request) -> web.Response:
        return web.json_response(payload, status=status)

    async def body() -> None:
        async with Rest(reply) as rest:
            await fetch_ws_token(rest.url, Credentials("key-2", SECRET))

    with pytest.raises(AuthError) as info:
        run(body())
    assert info.value.transient is transient
    assert text in str(info.value)
    assert SECRET not in str(info.value) and "key-2" not in str(info.value)


def test_unreachable_rest_is_transient() -> None:
    with pytest.raises(AuthError) as info:
        run(fetch_ws_token("http://127.0.0.1:9", Credentials("k", SECRET), timeout=2))
    assert info.value.transient


def test_non_json_response() -> None:
    async def html(request: web.Request) -> web.Response:
        return web.Response(text="<html>oops</html>")

    async def body() -> None:
        async with Rest(html) as rest:
            await fetch_ws_token(rest.url, Credentials("k", SECRET))

    with pytest.raises(AuthError, match="not JSON"):
        run(body())
