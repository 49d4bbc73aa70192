"""ccxt's `kraken` (sync, REST) behind the domain's `OrderGateway`: place once, never twice.

* `build_exchange` points ccxt at `KRACKED_KRAKEN_REST_URL` (public and private API) with the keys,
  and gives it a logger that can never print them (ccxt logs request headers, API-Key included, at
  DEBUG).
* `KrakenGateway.place` sends AddOrder with the signal's client id (`cl_ord_id` or `userref`) and a
  Kraken `deadline`. ccxt's exceptions are classified: an exchange refusal (InvalidOrder,
  InsufficientFunds, BadSymbol, AuthenticationError, …) is final → rejected; a network error or
  timeout may hide an accepted order, so before any retry the order is looked up by its client id
  (OpenOrders, then ClosedOrders) after the deadline has passed: found → acknowledged, never re-sent.
  Retries are bounded; then → failed with the reason.
* `validate=True` sends `validate=true`: Kraken checks the order and places nothing, so a retry
  needs no lookup.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import ccxt
from ccxt.base import errors as cx

from consumers.orders.domain import (
    ClientIdField,
    Execution,
    FoundOrder,
    LookupFailed,
    OrderCall,
    Status,
    parse_decimal,
    wall_clock_us,
)
from consumers.orders.settings import OrdersSettings

log = logging.getLogger(__name__)

ADD_ORDER_PATH = "/0/private/AddOrder"
CCXT_LOGGER = "consumers.orders.ccxt"
REDACTED = "<redacted>"


class RedactSecrets(logging.Filter):
    """Replaces the API key and secret in any record of the logger it is attached to."""

    def __init__(self, secrets: Sequence[str]) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        message = record.getMessage()
        if any(s in message for s in self._secrets):
            for secret in self._secrets:
                message = message.replace(secret, REDACTED)
            record.msg, record.args = message, None
        return True


def build_exchange(
    rest_url: str,
    api_key: str | None,
    api_secret: str | None,
    *,
    timeout_s: float = 10.0,
    rate_limit: bool = True,
) -> ccxt.kraken:
    """ccxt kraken talking to `rest_url` for both public (AssetPairs/Assets) and private endpoints."""
    url = rest_url.rstrip("/")
    ccxt_log = logging.getLogger(CCXT_LOGGER)
    # ccxt's fetch() logs "Request: <headers> <body>" at DEBUG, headers carrying API-Key: never emit it.
    ccxt_log.setLevel(logging.INFO)
    for existing in [f for f in ccxt_log.filters if isinstance(f, RedactSecrets)]:
        ccxt_log.removeFilter(existing)
    ccxt_log.addFilter(RedactSecrets([api_key or "", api_secret or ""]))
    return ccxt.kraken(
        {
            "apiKey": api_key or "",
            "secret": api_secret or "",
            "timeout": max(1, int(timeout_s * 1000)),
            "enableRateLimit": rate_limit,
            "logger": ccxt_log,
            "urls": {"api": {"public": url, "private": url}},
            # ccxt must never repeat a request by itself: every AddOrder retry is decided here
            "options": {"maxRetriesOnFailure": 0},
        }
    )


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounds of `KrakenGateway.place`."""

    max_attempts: int = 3  # AddOrder requests per signal, at most
    backoff_s: float = 0.5  # before the 2nd attempt; doubled each time, capped, with jitter
    backoff_max_s: float = 5.0
    lookup_attempts: int = 3  # tries to ask Kraken whether an order exists
    deadline_s: float | None = 5.0  # Kraken AddOrder `deadline` (500 ms to 60 s ahead)
    deadline_margin_s: float = 0.5  # wait this long past the deadline before trusting "not found"

    def backoff(self, retry: int) -> float:
        base = min(self.backoff_max_s, self.backoff_s * (2 ** (retry - 1)))
        return base * (0.5 + random.random() / 2) if base > 0 else 0.0


def classify(exc: BaseException) -> str:
    """`reject` (Kraken refused the order: final) or `retry` (the outcome is not known / transient).

    OnMaintenance (Kraken "EService:Market in cancel_only/post_only mode") is a refusal for this
    order even though ccxt files it under ExchangeNotAvailable: retrying within seconds is useless.
    """
    if isinstance(exc, cx.OnMaintenance):
        return "reject"
    if isinstance(exc, cx.OperationFailed):  # NetworkError (timeouts, 5xx, rate limit), BadResponse
        return "retry"
    if isinstance(exc, cx.ExchangeError):  # InvalidOrder, InsufficientFunds, BadSymbol, Auth, BadRequest
        return "reject"
    return "retry"  # anything unexpected: treat the request as possibly delivered


def may_have_reached_kraken(exc: BaseException) -> bool:
    """False only when Kraken certainly refused the request before processing it."""
    return not isinstance(exc, cx.InvalidNonce | cx.RateLimitExceeded | cx.DDoSProtection)


def describe_error(exc: BaseException) -> str:
    """`<ExceptionType>: <message>` (ccxt messages hold Kraken's error JSON, never the key)."""
    text = str(exc).strip() or repr(exc)
    return f"{type(exc).__name__}: {text[:400]}"


def _kraken_decimal(value: object) -> str | None:
    """Kraken returns vol_exec/price as decimal text; zero means "none yet"."""
    if not isinstance(value, str):
        return None
    try:
        number = parse_decimal(value, "value")
    except ValueError:
        return None
    return value if number != Decimal(0) else None


class KrakenGateway:
    """The `OrderGateway` of the service: one ccxt kraken client, bounded retries, lookups."""

    def __init__(
        self,
        exchange: ccxt.kraken,
        policy: RetryPolicy | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock_us: Callable[[], int] = wall_clock_us,
    ) -> None:
        self.exchange = exchange
        self.policy = policy or RetryPolicy()
        self._sleep = sleep
        self._clock_us = clock_us

    @classmethod
    def from_settings(cls, settings: OrdersSettings, **kwargs: Any) -> KrakenGateway:
        exchange = build_exchange(
            settings.rest_url,
            settings.api_key,
            settings.api_secret,
            timeout_s=settings.timeout_s,
            rate_limit=settings.rate_limit,
        )
        policy = RetryPolicy(
            max_attempts=settings.max_attempts,
            backoff_s=settings.backoff_s,
            deadline_s=settings.deadline_s,
        )
        return cls(exchange, policy, **kwargs)

    # ---- start-up / housekeeping ---------------------------------------------------------------
    def load_markets(self) -> int:
        """Load Kraken's pairs (public AssetPairs + Assets) once; returns the number of markets."""
        return len(self.exchange.load_markets())

    def cancel_all_after(self, timeout_s: int) -> None:
        """Kraken's dead man's switch (CancelAllOrdersAfter); call every 15-30 s, 0 disables."""
        self.exchange.cancel_all_orders_after(timeout_s * 1000)  # ccxt takes ms, sends seconds

    def close(self) -> None:
        session = getattr(self.exchange, "session", None)
        if session is not None:
            session.close()

    # ---- orders --------------------------------------------------------------------------------
    def place(self, call: OrderCall, *, validate: bool) -> Execution:
        """Send `call` as AddOrder at most `max_attempts` times, never duplicating it."""
        policy = self.policy
        bodies: list[str] = []
        ts_first: int | None = None
        in_doubt_until: datetime | None = None  # a sent request whose fate is unknown, and its deadline
        ever_in_doubt = False
        last_error = "no attempt"

        def result(status: Status, reason: str | None, **fields: Any) -> Execution:
            return Execution(
                status=status,
                reason=reason,
                attempts=len(bodies),
                request=self._request_json(call, bodies, validate),
                ts_sent=ts_first,
                **fields,
            )

        for attempt in range(1, policy.max_attempts + 1):
            if in_doubt_until is not None:
                found = self._resolve(call, in_doubt_until)
                if isinstance(found, str):
                    return result(Status.FAILED, found)
                if found is not None:
                    return self._acknowledged(result, call, found, "found after a timeout; not re-sent")
                in_doubt_until = None
            if attempt > 1:
                self._sleep(policy.backoff(attempt - 1))
            params, deadline = self._params(call, validate)
            ts = self._clock_us()
            self.exchange.last_request_url = None
            try:
                order = self.exchange.create_order(
                    call.symbol, call.type, call.side, call.amount, call.price, params
                )
            except Exception as exc:
                # ccxt records the request just before sending it: no AddOrder URL = nothing went out
                # (e.g. loading the markets failed), so that attempt cannot have placed anything.
                sent = str(self.exchange.last_request_url or "").endswith(ADD_ORDER_PATH)
                if sent:
                    bodies.append(self._last_body())
                    ts_first = ts_first if ts_first is not None else ts
                if classify(exc) == "reject":
                    if ever_in_doubt:
                        # e.g. Kraken refusing a cl_ord_id already in use: an earlier attempt did land.
                        found = self._resolve(call, None)
                        if isinstance(found, str):
                            return result(Status.FAILED, found)
                        if found is not None:
                            return self._acknowledged(result, call, found, "found after a timeout")
                    reason = f"kraken_rejected: {describe_error(exc)}"
                    log.info("order %s rejected by Kraken: %s", call.client_order_id, reason)
                    return result(Status.REJECTED, reason)
                last_error = describe_error(exc)
                log.warning(
                    "order %s attempt %d/%d: %s",
                    call.client_order_id,
                    attempt,
                    policy.max_attempts,
                    last_error,
                )
                if sent and not validate and may_have_reached_kraken(exc):
                    in_doubt_until = deadline or datetime.now(UTC)
                    ever_in_doubt = True
                continue
            bodies.append(self._last_body())
            ts_first = ts_first if ts_first is not None else ts
            order_id = order.get("id") if isinstance(order, Mapping) else None
            note = "validated by Kraken (validate=true); nothing placed" if validate else None
            log.info("order %s acknowledged by Kraken: %s", call.client_order_id, order_id or "validated")
            return result(Status.ACKNOWLEDGED, note, exchange_order_id=order_id)

        if in_doubt_until is not None:
            found = self._resolve(call, in_doubt_until)
            if isinstance(found, str):
                return result(Status.FAILED, found)
            if found is not None:
                return self._acknowledged(result, call, found, "found after a timeout; not re-sent")
        reason = f"kraken_failed: {len(bodies)} attempts sent, last error: {last_error}"
        log.warning("order %s failed: %s", call.client_order_id, reason)
        return result(Status.FAILED, reason)

    def lookup(self, call: OrderCall) -> FoundOrder | None:
        """The order tagged with `call`'s client id: OpenOrders first, then ClosedOrders.

        LookupFailed when Kraken could not be asked within `lookup_attempts`.
        """
        last: BaseException | None = None
        for attempt in range(1, self.policy.lookup_attempts + 1):
            if attempt > 1:
                self._sleep(self.policy.backoff(attempt - 1))
            try:
                return self._lookup_once(call)
            except cx.ExchangeError as exc:  # permission denied, bad request: asking again won't help
                raise LookupFailed(describe_error(exc)) from exc
            except Exception as exc:
                last = exc
                log.warning("lookup of order %s attempt %d: %s", call.client_order_id, attempt, exc)
        raise LookupFailed(describe_error(last) if last else "lookup failed")

    # ---- internals -----------------------------------------------------------------------------
    def _params(self, call: OrderCall, validate: bool) -> tuple[dict[str, Any], datetime | None]:
        params = dict(call.params)
        if validate:
            params["validate"] = "true"  # ccxt would url-encode a bool as "True"
        deadline = None
        if self.policy.deadline_s is not None:
            # Kraken `deadline` (RFC3339): the engine rejects the order after it, so once it has passed
            # an order that is not found can no longer appear.
            deadline = datetime.now(UTC) + timedelta(seconds=self.policy.deadline_s)
            params["deadline"] = deadline.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return params, deadline

    def _resolve(self, call: OrderCall, deadline: datetime | None) -> FoundOrder | str | None:
        """Look up an order whose AddOrder may have landed: FoundOrder, None (absent) or a failure reason."""
        if deadline is not None:
            wait = (deadline - datetime.now(UTC)).total_seconds() + self.policy.deadline_margin_s
            if wait > 0:
                self._sleep(wait)
        try:
            return self.lookup(call)
        except LookupFailed as exc:
            reason = (
                f"kraken_unknown: the order may exist (client id {call.client_order_id}) but Kraken could "
                f"not be asked: {exc}; not re-sent"
            )
            log.error("order %s: %s", call.client_order_id, reason)
            return reason

    def _lookup_once(self, call: OrderCall) -> FoundOrder | None:
        if call.client_id_field is ClientIdField.USERREF:
            params: dict[str, Any] = {"userref": int(call.client_order_id)}
        else:
            params = {"clientOrderId": call.client_order_id}  # ccxt sends it as cl_ord_id
        for fetch in (self.exchange.fetch_open_orders, self.exchange.fetch_closed_orders):
            for order in fetch(None, None, None, dict(params)):
                info = order.get("info") or {}
                if self._matches(call, info):
                    return FoundOrder(
                        exchange_order_id=str(order.get("id")),
                        status=str(info.get("status") or order.get("status") or ""),
                        filled_qty=_kraken_decimal(info.get("vol_exec")),
                        avg_price=_kraken_decimal(info.get("price")),
                    )
        return None

    @staticmethod
    def _matches(call: OrderCall, info: Mapping[str, Any]) -> bool:
        if call.client_id_field is ClientIdField.USERREF:
            return str(info.get("userref")) == call.client_order_id
        return str(info.get("cl_ord_id") or "").lower() == call.client_order_id.lower()

    @staticmethod
    def _acknowledged(
        result: Callable[..., Execution], call: OrderCall, found: FoundOrder, note: str
    ) -> Execution:
        log.info("order %s acknowledged (%s): %s", call.client_order_id, note, found.exchange_order_id)
        return result(
            Status.ACKNOWLEDGED,
            f"{note} (Kraken status {found.status})",
            exchange_order_id=found.exchange_order_id,
            filled_qty=found.filled_qty,
            avg_price=found.avg_price,
        )

    def _last_body(self) -> str:
        body = getattr(self.exchange, "last_request_body", None)
        return body if isinstance(body, str) else ""

    @staticmethod
    def _request_json(call: OrderCall, bodies: list[str], validate: bool) -> str:
        """The ccxt call and every AddOrder body sent (nonce included; key/secret/signature never)."""
        request = call.as_dict()
        request["validate"] = validate
        request["endpoint"] = ADD_ORDER_PATH
        request["bodies"] = bodies
        return json.dumps(request, separators=(",", ":"))
