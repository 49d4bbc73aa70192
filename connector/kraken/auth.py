"""Kraken REST authentication for WebSocket tokens (reference §3.1, §3.2). Secrets never leave here.

`Credentials` holds the API key and secret; its repr, str and format show only that a key is set, so
a stray log line or exception cannot leak them. `sign` is Kraken's API-Sign:
base64(HMAC-SHA512(base64decode(secret), uri_path + SHA256(nonce + body))). `fetch_ws_token` POSTs
`nonce=<ms>` (form-encoded) to `/0/private/GetWebSocketsToken` and returns the token; the client calls
it before every (re)connection of an authenticated socket because a token must be used within 15
minutes and is only kept alive by an open private subscription.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import threading
import time
from dataclasses import dataclass, field

import aiohttp

TOKEN_PATH = "/0/private/GetWebSocketsToken"


class AuthError(Exception):
    """The token request failed; the message says why and never contains the key or secret."""

    def __init__(self, message: str, transient: bool = True) -> None:
        super().__init__(message)
        self.transient = transient  # False = bad key/permission: retrying will not help


@dataclass(frozen=True)
class Credentials:
    """API key and base64 secret; never shown by repr/str."""

    key: str = field(repr=False)
    secret: str = field(repr=False)

    def __post_init__(self) -> None:
        try:
            base64.b64decode(self.secret, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("KRACKED_KRAKEN_API_SECRET is not valid base64") from None

    def __repr__(self) -> str:
        return "Credentials(key=<set>, secret=<hidden>)"

    __str__ = __repr__


class Nonce:
    """Always-increasing millisecond nonce for one API key (reference §3.2: unsigned 64-bit, increasing)."""

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def next(self) -> int:
        with self._lock:
            self._last = max(self._last + 1, time.time_ns() // 1_000_000)
            return self._last


def sign(uri_path: str, nonce: int | str, body: str, secret: str) -> str:
    """Kraken's API-Sign for a private REST call (reference §3.2, official test vector in the tests)."""
    digest = hashlib.sha256((str(nonce) + body).encode()).digest()
    mac = hmac.new(base64.b64decode(secret), uri_path.encode() + digest, hashlib.sha512)
    return base64.b64encode(mac.digest()).decode("ascii")


_NONCES: dict[str, Nonce] = {}


def _nonce_for(key: str) -> Nonce:
    nonce = _NONCES.get(key)
    if nonce is None:
        nonce = _NONCES[key] = Nonce()
    return nonce


async def fetch_ws_token(
    rest_url: str,
    credentials: Credentials,
    session: aiohttp.ClientSession | None = None,
    timeout: float = 15.0,
) -> str:
    """A fresh WebSocket token from REST `GetWebSocketsToken`; AuthError (no secret in it) on failure."""
    nonce = _nonce_for(credentials.key).next()
    body = f"nonce={nonce}"
    headers = {
        "API-Key": credentials.key,
        "API-Sign": sign(TOKEN_PATH, nonce, body, credentials.secret),
        "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
    }
    url = rest_url.rstrip("/") + TOKEN_PATH
    own = session is None
    sess = session or aiohttp.ClientSession()
    try:
        async with sess.post(
            url, data=body.encode(), headers=headers, timeout=aiohttp.ClientTimeout(total=timeout)
        ) as resp:
            if resp.status >= 500 or resp.status == 429:
                raise AuthError(f"GetWebSocketsToken: HTTP {resp.status}")
            if resp.status >= 400:
                raise AuthError(
                    f"GetWebSocketsToken: HTTP {resp.status}", transient=resp.status in (408, 425)
                )
            try:
                doc = await resp.json(content_type=None)
            except ValueError:
                raise AuthError("GetWebSocketsToken: response is not JSON") from None
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise AuthError(f"GetWebSocketsToken: {type(exc).__name__}: {exc}") from None
    finally:
        if own:
            await sess.close()
    errors = doc.get("error") if isinstance(doc, dict) else None
    if errors:
        text = "; ".join(str(e) for e in errors)
        # EAPI:Invalid key / Permission denied will not fix themselves; EService/EAPI:Rate limit will
        transient = not any(s in text for s in ("Invalid key", "Invalid signature", "Permission denied"))
        raise AuthError(f"GetWebSocketsToken: {text}", transient=transient)
    result = doc.get("result") if isinstance(doc, dict) else None
    token = result.get("token") if isinstance(result, dict) else None
    if not isinstance(token, str) or not token:
        raise AuthError("GetWebSocketsToken: no token in the response")
    return token
