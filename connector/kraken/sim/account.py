"""The simulated account behind authenticated sessions: its orders, fills and balances.

Every N-th market trade of a symbol is attributed to the account as the taker (a market order that
fills at once), which yields the `executions` life cycle pending_new → new → trade → filled
(reference §3.3) and two `balances` ledger updates sharing the trade as `ref_id` (§3.4: base and
quote legs, the fee on the quote leg). Amounts are fixed-point integers at the asset's precision;
the account also keeps two resting limit orders per symbol so the executions snapshot is not empty.
"""

from __future__ import annotations

import base64
from collections import deque
from typing import Any

from schemas.checksum import fixed_to_text

from .instruments import PairSpec
from .wire import Num

FEE_BPS = 26  # taker fee, basis points of cost
_MASK80 = (1 << 80) - 1


def rescale(value: int, from_precision: int, to_precision: int) -> int:
    """Change fixed-point precision; rounds half away from zero when digits are dropped."""
    if to_precision >= from_precision:
        return value * 10 ** (to_precision - from_precision)
    div = 10 ** (from_precision - to_precision)
    q, r = divmod(abs(value), div)
    if 2 * r >= div:
        q += 1
    return q if value >= 0 else -q


def num(value: int, precision: int) -> Num:
    return Num(fixed_to_text(value, precision))


def make_id(prefix: str, n: int, salt: int) -> str:
    """Kraken-style id `XXXXXX-XXXXX-XXXXXX` (first char = prefix), deterministic from a counter."""
    x = (n * 0x9E3779B97F4A7C15F39D + salt * 0x2545F4914F6CDD1D) & _MASK80
    s = base64.b32encode(x.to_bytes(10, "big")).decode("ascii")
    return f"{prefix}{s[:5]}-{s[5:10]}-{s[10:16]}"


class Account:
    """Balances and orders of the one simulated account (all tokens map to it)."""

    def __init__(self, salt: int) -> None:
        self.salt = salt
        self.balances: dict[str, tuple[int, int]] = {}  # asset -> (balance, precision)
        self.open_orders: list[dict[str, Any]] = []
        self.fills: deque[dict[str, Any]] = deque(maxlen=50)
        self._orders = 0
        self._execs = 0
        self._ledgers = 0
        self._userref = 0

    def _next(self, what: str) -> str:
        if what == "O":
            self._orders += 1
            return make_id("O", self._orders, self.salt)
        if what == "T":
            self._execs += 1
            return make_id("T", self._execs, self.salt ^ 0x5A5A)
        self._ledgers += 1
        return make_id("L", self._ledgers, self.salt ^ 0xA5A5)

    def add_pair(self, spec: PairSpec, ts: str) -> None:
        """Fund the pair's assets and park one far buy and one far sell limit order (never filled)."""
        for asset, precision, whole in (
            (spec.base, spec.base_precision, 10),
            (spec.quote, spec.quote_precision, 1_000_000),
        ):
            self.balances.setdefault(asset, (whole * 10**precision, precision))
        for side, price in (("buy", spec.start_price // 2), ("sell", spec.start_price * 2)):
            price -= price % spec.price_increment
            self._userref += 1
            self.open_orders.append(
                {
                    "order_id": self._next("O"),
                    "order_userref": self._userref,
                    "symbol": spec.symbol,
                    "side": side,
                    "order_type": "limit",
                    "order_qty": num(spec.qty_min, spec.qty_precision),
                    "limit_price": num(price, spec.price_precision),
                    "time_in_force": "GTC",
                    "order_status": "new",
                    "exec_type": "new",
                    "cum_qty": num(0, spec.qty_precision),
                    "cum_cost": num(0, spec.quote_precision),
                    "avg_price": num(0, spec.price_precision),
                    "timestamp": ts,
                }
            )

    def balance_snapshot(self) -> list[dict[str, Any]]:
        out = []
        for asset, (value, precision) in sorted(self.balances.items()):
            text = num(value, precision)
            out.append(
                {
                    "asset": asset,
                    "asset_class": "currency",
                    "balance": text,
                    "wallets": [{"type": "spot", "id": "main", "balance": text}],
                }
            )
        return out

    def take(
        self, spec: PairSpec, side: str, price: int, qty: int, trade_id: int, ts: str
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The account takes a market trade: (execution reports, ledger updates), in sending order."""
        pp, qp, bp, cp = spec.price_precision, spec.qty_precision, spec.base_precision, spec.quote_precision
        cost = rescale(price * qty, pp + qp, cp)
        fee = rescale(cost * FEE_BPS, cp + 4, cp)
        base_amount = rescale(qty, qp, bp)
        base_bal, _ = self.balances[spec.base]
        quote_bal, _ = self.balances[spec.quote]
        if side == "buy":
            base_bal += base_amount
            quote_amount = -cost
        else:
            base_bal -= base_amount
            quote_amount = cost
        quote_bal += quote_amount - fee
        self.balances[spec.base] = (base_bal, bp)
        self.balances[spec.quote] = (quote_bal, cp)
        order_id, exec_id = self._next("O"), self._next("T")
        self._userref += 1
        ref = self._userref
        qty_n, price_n, cost_n, fee_n = num(qty, qp), num(price, pp), num(cost, cp), num(fee, cp)
        execs: list[dict[str, Any]] = [
            {
                "order_id": order_id,
                "order_userref": ref,
                "symbol": spec.symbol,
                "order_qty": qty_n,
                "cum_cost": num(0, cp),
                "time_in_force": "IOC",
                "exec_type": "pending_new",
                "side": side,
                "order_type": "market",
                "order_status": "pending_new",
                "fee_usd_equiv": num(0, cp),
                "fee_ccy_pref": "fciq",
                "timestamp": ts,
            },
            {
                "timestamp": ts,
                "order_status": "new",
                "exec_type": "new",
                "order_userref": ref,
                "order_id": order_id,
            },
            {
                "order_id": order_id,
                "order_userref": ref,
                "exec_id": exec_id,
                "exec_type": "trade",
                "trade_id": trade_id,
                "symbol": spec.symbol,
                "side": side,
                "last_qty": qty_n,
                "last_price": price_n,
                "liquidity_ind": "t",
                "cost": cost_n,
                "order_type": "market",
                "timestamp": ts,
                "order_status": "filled",
                "cum_qty": qty_n,
                "cum_cost": cost_n,
                "avg_price": price_n,
                "fee_usd_equiv": fee_n,
                "fees": [{"asset": spec.quote, "qty": fee_n}],
            },
            {
                "order_id": order_id,
                "order_userref": ref,
                "timestamp": ts,
                "order_status": "filled",
                "exec_type": "filled",
                "cum_qty": qty_n,
                "cum_cost": cost_n,
                "avg_price": price_n,
                "fee_usd_equiv": fee_n,
            },
        ]
        self.fills.append(execs[2])
        ref_id = exec_id
        ledgers = [
            {
                "ledger_id": self._next("L"),
                "ref_id": ref_id,
                "timestamp": ts,
                "type": "trade",
                "subtype": "",
                "category": "trade",
                "asset": spec.base,
                "asset_class": "currency",
                "wallet_type": "spot",
                "wallet_id": "main",
                "amount": num(base_amount if side == "buy" else -base_amount, bp),
                "fee": num(0, bp),
                "balance": num(base_bal, bp),
            },
            {
                "ledger_id": self._next("L"),
                "ref_id": ref_id,
                "timestamp": ts,
                "type": "trade",
                "subtype": "",
                "category": "trade",
                "asset": spec.quote,
                "asset_class": "currency",
                "wallet_type": "spot",
                "wallet_id": "main",
                "amount": num(quote_amount, cp),
                "fee": fee_n,
                "balance": num(quote_bal, cp),
            },
        ]
        return execs, ledgers
