"""A local stand-in for Kraken's spot REST API that records every request (tests only).

Serves on 127.0.0.1, port 0, from a background thread (`http.server`), so the sync ccxt `kraken`
client can be pointed at it by URL and talk real HTTP. It implements what ccxt's kraken needs:

* public `GET /0/public/Assets` and `/0/public/AssetPairs` (ccxt's `load_markets`), `SystemStatus`,
  `Time`, with real-looking data for BTC/USD (XXBTZUSD), ETH/USD (XETHZUSD), LTC/USD (XLTCZUSD) and
  LTC/USDT (LTCUSDT; the pairs of the reference §8.1 request tests);
* private `POST /0/private/<Name>`: AddOrder (incl. `validate`), OpenOrders, ClosedOrders,
  QueryOrders, CancelOrder, Balance, BalanceEx, GetWebSocketsToken, CancelAllOrdersAfter. Every
  private request must carry the API key and a valid API-Sign (reference §3.2), else Kraken's
  `EAPI:Invalid key`.

Recorded requests keep path, form body and headers, minus the `API-Key` and `API-Sign` headers.
Knobs: `fail_next_add_order(error)` (a Kraken error string), `fail_next_add_order_http(status)`,
`fail_next_public(status)`, and
`hang_next_add_order(accept=True)`: accept the order, then hold the response until `release()` (or
`hold_s`), which a client with a shorter timeout sees as a timeout after Kraken accepted the order.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

SECRET_HEADERS = frozenset({"api-key", "api-sign"})


def kraken_signature(path: str, nonce: str, body: str, secret_b64: str) -> str:
    """API-Sign = base64(HMAC-SHA512(base64decode(secret), path + SHA256(nonce + body))) (§3.2)."""
    digest = hashlib.sha256((nonce + body).encode()).digest()
    mac = hmac.new(base64.b64decode(secret_b64), path.encode() + digest, hashlib.sha512)
    return base64.b64encode(mac.digest()).decode()


@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request as the fake saw it (secrets removed)."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: str
    form: tuple[tuple[str, str], ...]
    had_api_key: bool
    signature_ok: bool | None  # None for public requests

    @property
    def name(self) -> str:
        """Endpoint name (`AddOrder`, `AssetPairs`, ...)."""
        return self.path.rsplit("/", 1)[-1]

    @property
    def params(self) -> dict[str, str]:
        return dict(self.form)

    def body_without(self, *names: str) -> str:
        """The raw url-encoded body without the given fields (their order and encoding kept)."""
        drop = set(names)
        return "&".join(p for p in self.body.split("&") if p and p.split("=", 1)[0] not in drop)


@dataclass
class PairData:
    """One Kraken AssetPairs entry (REST ids) and the price market orders fill at."""

    id: str
    altname: str
    wsname: str
    base: str
    quote: str
    pair_decimals: int
    lot_decimals: int
    ordermin: str
    costmin: str
    tick_size: str
    fill_price: str
    leverage: list[int] = field(default_factory=list)


PAIRS: tuple[PairData, ...] = (
    PairData(
        "XXBTZUSD", "XBTUSD", "XBT/USD", "XXBT", "ZUSD", 1, 8, "0.0001", "0.5", "0.1", "60000.0", [2, 3, 4, 5]
    ),
    PairData(
        "XETHZUSD", "ETHUSD", "ETH/USD", "XETH", "ZUSD", 2, 8, "0.002", "0.5", "0.01", "3000.00", [2, 3, 4, 5]
    ),
    PairData("XLTCZUSD", "LTCUSD", "LTC/USD", "XLTC", "ZUSD", 2, 8, "0.05", "0.5", "0.01", "80.00", [2, 3]),
    PairData("LTCUSDT", "LTCUSDT", "LTC/USDT", "XLTC", "USDT", 5, 8, "0.05", "0.5", "0.00001", "80.00000"),
)

ASSETS: dict[str, dict[str, Any]] = {
    "XXBT": {
        "aclass": "currency",
        "altname": "XBT",
        "decimals": 10,
        "display_decimals": 5,
        "status": "enabled",
    },
    "XETH": {
        "aclass": "currency",
        "altname": "ETH",
        "decimals": 10,
        "display_decimals": 5,
        "status": "enabled",
    },
    "XLTC": {
        "aclass": "currency",
        "altname": "LTC",
        "decimals": 10,
        "display_decimals": 5,
        "status": "enabled",
    },
    "ZUSD": {
        "aclass": "currency",
        "altname": "USD",
        "decimals": 4,
        "display_decimals": 2,
        "status": "enabled",
    },
    "USDT": {
        "aclass": "currency",
        "altname": "USDT",
        "decimals": 8,
        "display_decimals": 4,
        "status": "enabled",
    },
}

_FEES = [[0, 0.4], [10000, 0.35], [50000, 0.24], [100000, 0.22]]
_FEES_MAKER = [[0, 0.25], [10000, 0.2], [50000, 0.14], [100000, 0.12]]


def _asset_pair(p: PairData) -> dict[str, Any]:
    return {
        "altname": p.altname,
        "wsname": p.wsname,
        "aclass_base": "currency",
        "base": p.base,
        "aclass_quote": "currency",
        "quote": p.quote,
        "lot": "unit",
        "cost_decimals": 5,
        "pair_decimals": p.pair_decimals,
        "lot_decimals": p.lot_decimals,
        "lot_multiplier": 1,
        "leverage_buy": p.leverage,
        "leverage_sell": p.leverage,
        "fees": _FEES,
        "fees_maker": _FEES_MAKER,
        "fee_volume_currency": "ZUSD",
        "margin_call": 80,
        "margin_stop": 40,
        "ordermin": p.ordermin,
        "costmin": p.costmin,
        "tick_size": p.tick_size,
        "status": "online",
    }


class KrakenError(Exception):
    def __init__(self, error: str, status: int = 200) -> None:
        super().__init__(error)
        self.error = error
        self.status = status


class FakeKrakenRest:
    """The fake server; use as a context manager or call `start()`/`stop()`."""

    def __init__(self, api_key: str, api_secret: str, *, hold_s: float = 10.0, strict_nonce: bool = False):
        self.api_key = api_key
        self.api_secret = api_secret
        self.hold_s = hold_s
        self.strict_nonce = strict_nonce
        self.pairs = {p.id: p for p in PAIRS}
        self.orders: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._add_failures: deque[KrakenError] = deque()
        self._public_failures: deque[KrakenError] = deque()
        self._hangs: deque[bool] = deque()
        self._release = threading.Event()
        self.hung = threading.Event()  # set when a held AddOrder has been accepted/recorded
        self._last_nonce = 0
        self._counter = 0
        self.cancel_after: list[int] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle -----------------------------------------------------------------------------
    def start(self) -> FakeKrakenRest:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            wbufsize = -1  # one write per response: no Nagle/delayed-ACK stall on keep-alive connections

            def do_GET(self) -> None:
                fake._serve(self, "GET")

            def do_POST(self) -> None:
                fake._serve(self, "POST")

            def log_message(self, format: str, *args: Any) -> None:
                return None  # quiet tests

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), name="fake-kraken-rest", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> FakeKrakenRest:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("fake Kraken REST server not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # ---- knobs ---------------------------------------------------------------------------------
    def fail_next_add_order(self, error: str, *, times: int = 1) -> None:
        """The next `times` AddOrder get `{"error": [error]}` (nothing is created)."""
        with self._lock:
            self._add_failures.extend(KrakenError(error) for _ in range(times))

    def fail_next_add_order_http(
        self, status: int, *, times: int = 1, error: str = "EService:Unavailable"
    ) -> None:
        """The next `times` AddOrder get HTTP `status` with a Kraken error body (nothing is created)."""
        with self._lock:
            self._add_failures.extend(KrakenError(error, status) for _ in range(times))

    def fail_next_public(self, status: int = 503, *, times: int = 1) -> None:
        """The next `times` public requests (AssetPairs, Assets, ...) get HTTP `status`."""
        with self._lock:
            self._public_failures.extend(KrakenError("EService:Unavailable", status) for _ in range(times))

    def hang_next_add_order(self, *, accept: bool = True, times: int = 1) -> None:
        """The next `times` AddOrder are held (accepted first when `accept`) until `release()`."""
        with self._lock:
            self._hangs.extend(accept for _ in range(times))
        self._release.clear()

    def release(self) -> None:
        self._release.set()

    # ---- inspection ----------------------------------------------------------------------------
    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def requests_to(self, name: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.name == name]

    def placed_orders(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.orders.values())

    # ---- HTTP ----------------------------------------------------------------------------------
    def _serve(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        split = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length).decode() if length else ""
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in SECRET_HEADERS}
        is_json = "json" in (handler.headers.get("Content-Type") or "")
        if is_json and body:
            form = tuple((str(k), str(v)) for k, v in json.loads(body).items())
        else:
            form = tuple(parse_qsl(body, keep_blank_values=True))
        private = split.path.startswith("/0/private/")
        signature_ok = self._signature_ok(handler, split.path, dict(form), body) if private else None
        recorded = RecordedRequest(
            method=method,
            path=split.path,
            query=split.query,
            headers=headers,
            body=body,
            form=form,
            had_api_key=handler.headers.get("API-Key") is not None,
            signature_ok=signature_ok,
        )
        with self._lock:
            self._requests.append(recorded)
        status = 200
        try:
            if private:
                if not signature_ok:
                    raise KrakenError("EAPI:Invalid key")
                self._check_nonce(dict(form).get("nonce", ""))
                result = self._private(recorded)
            elif split.path.startswith("/0/public/"):
                result = self._public(recorded)
            else:
                raise KrakenError("EGeneral:Unknown method", 404)
            payload: dict[str, Any] = {"error": [], "result": result}
        except KrakenError as exc:
            status = exc.status
            payload = {"error": [exc.error]}
        except _Held:
            return self._respond_after_hold(handler)
        self._respond(handler, status, payload)

    def _respond(self, handler: BaseHTTPRequestHandler, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json; charset=utf-8")
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
            handler.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout): that is the point of a held response

    def _respond_after_hold(self, handler: BaseHTTPRequestHandler) -> None:
        self._release.wait(self.hold_s)
        self._respond(handler, 200, {"error": ["EService:Busy"]})
        handler.close_connection = True

    def _signature_ok(
        self, handler: BaseHTTPRequestHandler, path: str, form: dict[str, str], body: str
    ) -> bool:
        if handler.headers.get("API-Key") != self.api_key:
            return False
        sign = handler.headers.get("API-Sign") or ""
        nonce = form.get("nonce", "")
        try:
            expected = kraken_signature(path, nonce, body, self.api_secret)
        except (ValueError, TypeError):
            return False
        return hmac.compare_digest(sign, expected)

    def _check_nonce(self, nonce: str) -> None:
        if not nonce.isdigit():
            raise KrakenError("EAPI:Invalid nonce")
        with self._lock:
            if self.strict_nonce and int(nonce) <= self._last_nonce:
                raise KrakenError("EAPI:Invalid nonce")
            self._last_nonce = max(self._last_nonce, int(nonce))

    # ---- endpoints -----------------------------------------------------------------------------
    def _public(self, req: RecordedRequest) -> Any:
        with self._lock:
            failure = self._public_failures.popleft() if self._public_failures else None
        if failure is not None:
            raise failure
        if req.name == "AssetPairs":
            return {p.id: _asset_pair(p) for p in self.pairs.values()}
        if req.name == "Assets":
            return ASSETS
        if req.name == "SystemStatus":
            return {"status": "online", "timestamp": "2024-07-22T16:34:44Z"}
        if req.name == "Time":
            now = int(time.time())
            return {
                "unixtime": now,
                "rfc1123": time.strftime("%a, %d %b %y %H:%M:%S +0000", time.gmtime(now)),
            }
        raise KrakenError("EGeneral:Unknown method", 404)

    def _private(self, req: RecordedRequest) -> Any:
        params = req.params
        name = req.name
        if name == "AddOrder":
            return self._add_order(params)
        if name in ("OpenOrders", "ClosedOrders"):
            want_open = name == "OpenOrders"
            with self._lock:
                selected = {
                    txid: o
                    for txid, o in self.orders.items()
                    if (o["status"] in ("open", "pending")) == want_open and self._matches(o, params)
                }
            if want_open:
                return {"open": selected}
            return {"closed": selected, "count": len(selected)}
        if name == "QueryOrders":
            wanted = [t for t in params.get("txid", "").split(",") if t]
            with self._lock:
                return {t: self.orders[t] for t in wanted if t in self.orders}
        if name == "CancelOrder":
            return self._cancel(params)
        if name == "Balance":
            return {"ZUSD": "10000.0000", "XXBT": "1.0000000000", "XETH": "10.0000000000"}
        if name == "BalanceEx":
            return {
                "ZUSD": {"balance": "10000.0000", "hold_trade": "0.0000"},
                "XXBT": {"balance": "1.0000000000", "hold_trade": "0.0000000000"},
            }
        if name == "GetWebSocketsToken":
            return {"token": "fake-ws-token-0000000000000000000000000000", "expires": 900}
        if name == "CancelAllOrdersAfter":
            timeout = int(params.get("timeout", "0"))
            self.cancel_after.append(timeout)
            now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + timeout))
            return {"currentTime": now, "triggerTime": later if timeout else "0"}
        raise KrakenError("EGeneral:Unknown method", 404)

    @staticmethod
    def _matches(order: dict[str, Any], params: dict[str, str]) -> bool:
        if "userref" in params and str(order.get("userref")) != params["userref"]:
            return False
        return not ("cl_ord_id" in params and order.get("cl_ord_id") != params["cl_ord_id"])

    def _pair(self, name: str) -> PairData:
        for p in self.pairs.values():
            if name in (p.id, p.altname, p.wsname):
                return p
        raise KrakenError("EQuery:Unknown asset pair")

    def _add_order(self, params: dict[str, str]) -> dict[str, Any]:
        with self._lock:
            failure = self._add_failures.popleft() if self._add_failures else None
            hang = self._hangs.popleft() if self._hangs and failure is None else None
        if failure is not None:
            raise failure
        for required in ("pair", "type", "ordertype", "volume"):
            if not params.get(required):
                raise KrakenError(f"EGeneral:Invalid arguments:{required}")
        pair = self._pair(params["pair"])
        if params["type"] not in ("buy", "sell"):
            raise KrakenError("EGeneral:Invalid arguments:type")
        descr = self._descr(pair, params)
        if params.get("validate") in ("true", "True", "1"):
            if hang is not None:
                self.hung.set()
                raise _Held()
            return {"descr": descr}
        if hang is False:  # held without accepting: Kraken never saw it
            self.hung.set()
            raise _Held()
        cl_ord_id = params.get("cl_ord_id")
        with self._lock:
            if cl_ord_id and any(
                o.get("cl_ord_id") == cl_ord_id and o["status"] in ("open", "pending")
                for o in self.orders.values()
            ):
                # Kraken enforces cl_ord_id uniqueness among open orders (error text not documented).
                raise KrakenError("EOrder:Invalid order:duplicate cl_ord_id")
            self._counter += 1
            txid = self._txid(self._counter)
            self.orders[txid] = self._order_info(pair, params, descr)
        if hang:
            self.hung.set()
            raise _Held()
        return {"descr": descr, "txid": [txid]}

    def _cancel(self, params: dict[str, str]) -> dict[str, Any]:
        key = params.get("txid") or params.get("cl_ord_id") or ""
        with self._lock:
            for txid, order in self.orders.items():
                if (
                    key in (txid, order.get("cl_ord_id"), str(order.get("userref")))
                    and order["status"] == "open"
                ):
                    order["status"] = "canceled"
                    order["closetm"] = time.time()
                    return {"count": 1}
        raise KrakenError("EOrder:Unknown order")

    @staticmethod
    def _txid(n: int) -> str:
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
        digits = ""
        value = n * 2654435761 % (32**17)
        for _ in range(17):
            value, rem = divmod(value, 32)
            digits += alphabet[rem]
        return f"O{digits[:5]}-{digits[5:10]}-{digits[10:16]}"

    @staticmethod
    def _descr(pair: PairData, params: dict[str, str]) -> dict[str, str]:
        text = f"{params['type']} {params['volume']} {pair.altname} @ {params['ordertype']}"
        if params.get("price"):
            text += f" {params['price']}"
        if params.get("price2"):
            text += f" -> limit {params['price2']}"
        if params.get("leverage"):
            text += f" with {params['leverage']}:1 leverage"
        return {"order": text}

    def _order_info(self, pair: PairData, params: dict[str, str], descr: dict[str, str]) -> dict[str, Any]:
        market = params["ordertype"] == "market"
        now = time.time()
        userref = params.get("userref")
        info: dict[str, Any] = {
            "refid": None,
            "userref": int(userref) if userref and userref.lstrip("-").isdigit() else None,
            "cl_ord_id": params.get("cl_ord_id"),
            "status": "closed" if market else "open",
            "opentm": now,
            "starttm": 0,
            "expiretm": int(params["expiretm"]) if params.get("expiretm", "").isdigit() else 0,
            "descr": {
                "pair": pair.altname,
                "type": params["type"],
                "ordertype": params["ordertype"],
                "price": params.get("price", "0"),
                "price2": params.get("price2", "0"),
                "leverage": f"{params['leverage']}:1" if params.get("leverage") else "none",
                "order": descr["order"],
                "close": "",
            },
            "vol": params["volume"],
            "vol_exec": params["volume"] if market else "0.00000000",
            "cost": "0.00000",
            "fee": "0.00000",
            "price": pair.fill_price if market else "0.00000",
            "stopprice": "0.00000",
            "limitprice": "0.00000",
            "misc": "",
            "oflags": params.get("oflags", "fciq"),
        }
        if market:
            info["closetm"] = now
            info["reason"] = None
        return info


class _Held(Exception):
    """Internal: answer this request only after `release()` (or `hold_s`)."""
