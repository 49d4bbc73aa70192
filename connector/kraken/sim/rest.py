"""Kraken REST stand-in: `POST /0/private/GetWebSocketsToken` with real API-Key/API-Sign checking.

The signature is verified exactly as Kraken computes it (reference §3.2):
`API-Sign = base64(HMAC-SHA512(base64decode(secret), uri_path + SHA256(nonce + post_body)))`, with the
body form-encoded (`nonce=...`) or JSON (`{"nonce": ...}`). Nonces must increase per key. Errors are
Kraken-shaped (`{"error": ["EAPI:Invalid key"]}`, HTTP 200). Tokens are valid for `token_ttl` seconds
unless used by a private subscription first, after which they stay valid (reference §3.1). The
secret is never logged or recorded; `requests` keeps what a test needs (path, outcome, nonce).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import secrets
import socket
import time
import urllib.parse
from dataclasses import dataclass

from aiohttp import web

from .config import TOKEN_PATH, SimConfig

log = logging.getLogger(__name__)


def sign(secret_b64: str, uri_path: str, nonce: str | int, body: str) -> str:
    """Kraken's API-Sign for a private REST call (reference §3.2)."""
    digest = hashlib.sha256((str(nonce) + body).encode()).digest()
    mac = hmac.new(base64.b64decode(secret_b64), uri_path.encode() + digest, hashlib.sha512)
    return base64.b64encode(mac.digest()).decode("ascii")


class TokenStore:
    """WebSocket tokens issued by the REST endpoint and accepted by private subscriptions."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._tokens: dict[str, tuple[float, bool]] = {}

    def issue(self) -> str:
        token = secrets.token_urlsafe(32)
        self._tokens[token] = (time.monotonic(), False)
        return token

    def accept(self, token: str) -> bool:
        """True for a known token that is still fresh or already in use (then it stays valid)."""
        entry = self._tokens.get(token)
        if entry is None:
            return False
        issued, used = entry
        if not used and time.monotonic() - issued > self.ttl:
            return False
        self._tokens[token] = (issued, True)
        return True

    def revoke_all(self) -> None:
        self._tokens.clear()

    def __len__(self) -> int:
        return len(self._tokens)


@dataclass(frozen=True)
class RestRecord:
    """One REST request as seen by the simulator (no secret, no signature)."""

    method: str
    path: str
    ok: bool
    error: str | None
    nonce: str | None


def _error(msg: str) -> web.Response:
    return web.json_response({"error": [msg]})


class RestServer:
    """aiohttp server for the token endpoint (and SystemStatus), bound to host:port (0 = any)."""

    def __init__(self, config: SimConfig, tokens: TokenStore) -> None:
        self.config = config
        self.tokens = tokens
        self.requests: list[RestRecord] = []
        self._last_nonce: dict[str, int] = {}
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.system_status = config.system_status

    def _record(self, request: web.Request, error: str | None, nonce: str | None) -> None:
        self.requests.append(RestRecord(request.method, request.path, error is None, error, nonce))
        if error is not None:
            log.info("REST %s %s refused: %s", request.method, request.path, error)

    async def _token(self, request: web.Request) -> web.Response:
        body = (await request.read()).decode("utf-8", errors="replace")
        nonce, error = self._check(request, body)
        if error is not None:
            self._record(request, error, nonce)
            return _error(error)
        token = self.tokens.issue()
        self._record(request, None, nonce)
        log.info("REST issued a WebSocket token (%d issued)", len(self.tokens))
        return web.json_response({"error": [], "result": {"token": token, "expires": self.config.token_ttl}})

    def _check(self, request: web.Request, body: str) -> tuple[str | None, str | None]:
        """(nonce seen, None) if the request is properly signed, else (nonce, Kraken error text)."""
        key = request.headers.get("API-Key")
        if not key or not hmac.compare_digest(key.encode(), self.config.api_key.encode()):
            return None, "EAPI:Invalid key"
        nonce = self._nonce(request, body)
        if nonce is None or not nonce.isdigit():
            return nonce, "EAPI:Invalid nonce"
        given = request.headers.get("API-Sign", "")
        try:
            raw = base64.b64decode(given, validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != hashlib.sha512().digest_size:
            return nonce, "EAPI:Invalid signature"
        expected = sign(self.config.api_secret, request.path, nonce, body)
        if not hmac.compare_digest(base64.b64decode(expected), raw):
            return nonce, "EAPI:Invalid signature"
        if int(nonce) <= self._last_nonce.get(key, -1):
            return nonce, "EAPI:Invalid nonce"
        self._last_nonce[key] = int(nonce)
        return nonce, None

    @staticmethod
    def _nonce(request: web.Request, body: str) -> str | None:
        if request.content_type == "application/json":
            try:
                doc = json.loads(body) if body else {}
            except ValueError:
                return None
            value = doc.get("nonce") if isinstance(doc, dict) else None
            return str(value) if isinstance(value, int | str) and not isinstance(value, bool) else None
        values = urllib.parse.parse_qs(body, keep_blank_values=True).get("nonce")
        return values[0] if values else None

    async def _other_private(self, request: web.Request) -> web.Response:
        self._record(request, "EGeneral:Unknown method", None)
        return _error("EGeneral:Unknown method")

    async def _system_status(self, request: web.Request) -> web.Response:
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return web.json_response({"error": [], "result": {"status": self.system_status, "timestamp": now}})

    async def start(self, host: str, port: int) -> int:
        app = web.Application()
        app.router.add_post(TOKEN_PATH, self._token)
        app.router.add_post("/0/private/{name}", self._other_private)
        app.router.add_get("/0/public/SystemStatus", self._system_status)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        self.port = sock.getsockname()[1]
        site = web.SockSite(self._runner, sock)
        await site.start()
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
