"""Pair and asset reference data: the real 683-pair `instrument` snapshot, plus made-up pairs.

Known symbols reuse Kraken's real metadata (price/qty precision, increments, minimums: reference §2.5)
so a connector learns the same precisions it would learn live and the checksums use them (§4.2).
Unknown symbols get plausible metadata (price precision 2, qty precision 8). The snapshot ships
gzip-compressed inside this package (a copy of tests/fixtures/kraken/instrument_snapshot_683_pairs.json).
"""

from __future__ import annotations

import functools
import gzip
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from schemas.checksum import to_fixed

from .wire import Num, dumps_exact, loads_exact

PACKAGED_SNAPSHOT = Path(__file__).with_name("instrument_snapshot_683_pairs.json.gz")

# Rough starting prices (quote units) for a few bases so BTC/USD looks like BTC/USD; others start at
# 50,000 price increments.
_START_PRICES = {
    "BTC": "60000",
    "ETH": "3000",
    "SOL": "150",
    "LTC": "80",
    "DOT": "6",
    "XRP": "0.5",
    "ADA": "0.4",
    "DOGE": "0.1",
    "MATIC": "0.56",
}


@dataclass(frozen=True)
class PairSpec:
    """What the market needs about one pair, with every amount as a fixed-point integer."""

    symbol: str
    base: str
    quote: str
    price_precision: int
    qty_precision: int
    price_increment: int  # in units of 10**-price_precision
    qty_increment: int  # in units of 10**-qty_precision
    qty_min: int  # in units of 10**-qty_precision
    base_precision: int  # asset precision (balances)
    quote_precision: int
    start_price: int  # in units of 10**-price_precision


def _read_text(path: Path) -> str:
    if path.suffix == ".gz":
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            return fh.read()
    return path.read_text(encoding="utf-8")


@functools.lru_cache(maxsize=4)
def _load(path: Path) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    doc = loads_exact(_read_text(path))
    data = doc["data"] if isinstance(doc, dict) and "data" in doc else doc
    pairs = {p["symbol"]: p for p in data["pairs"]}
    assets = {a["id"]: a for a in data["assets"]}
    return pairs, assets


def _fixed(value: Any, precision: int) -> int:
    return to_fixed(str(value), precision)


class Instruments:
    """Reference data for the simulator: real pairs from the snapshot, synthesized pairs otherwise."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or PACKAGED_SNAPSHOT
        known_pairs, known_assets = _load(self.path)
        self._pairs: dict[str, dict[str, Any]] = dict(known_pairs)
        self._assets: dict[str, dict[str, Any]] = dict(known_assets)
        self._known = frozenset(known_pairs)

    def is_known(self, symbol: str) -> bool:
        return symbol in self._known

    @property
    def symbols(self) -> frozenset[str]:
        return frozenset(self._pairs)

    def pair(self, symbol: str) -> dict[str, Any]:
        """The pair's `instrument` record (synthesized and remembered if the snapshot lacks it)."""
        if symbol not in self._pairs:
            base, _, quote = symbol.partition("/")
            self._pairs[symbol] = {
                "symbol": symbol,
                "base": base,
                "quote": quote,
                "status": "online",
                "qty_precision": 8,
                "qty_increment": Num("1e-08"),
                "price_precision": 2,
                "cost_precision": 5,
                "marginable": False,
                "has_index": False,
                "cost_min": Num("0.5"),
                "tick_size": Num("0.01"),
                "price_increment": Num("0.01"),
                "qty_min": Num("0.0001"),
            }
            for asset in (base, quote):
                self._assets.setdefault(
                    asset,
                    {
                        "id": asset,
                        "status": "enabled",
                        "precision": 8,
                        "precision_display": 5,
                        "borrowable": False,
                        "collateral_value": Num("0.0"),
                        "margin_rate": Num("0.0"),
                    },
                )
        return self._pairs[symbol]

    def asset(self, asset_id: str) -> dict[str, Any]:
        return self._assets[asset_id]

    def spec(self, symbol: str) -> PairSpec:
        p = self.pair(symbol)
        pp, qp = int(p["price_precision"]), int(p["qty_precision"])
        price_inc = max(1, _fixed(p.get("price_increment", p.get("tick_size", "1")), pp))
        qty_inc = max(1, _fixed(p.get("qty_increment", "0"), qp))
        qty_min = max(qty_inc, _fixed(p.get("qty_min", "0"), qp))
        start_text = _START_PRICES.get(p["base"])
        start = to_fixed(start_text, pp) if start_text is not None else 50_000 * price_inc
        start -= start % price_inc
        return PairSpec(
            symbol=symbol,
            base=p["base"],
            quote=p["quote"],
            price_precision=pp,
            qty_precision=qp,
            price_increment=price_inc,
            qty_increment=qty_inc,
            qty_min=qty_min,
            base_precision=int(self.asset(p["base"])["precision"]),
            quote_precision=int(self.asset(p["quote"])["precision"]),
            start_price=max(start, 2_000 * price_inc),
        )

    def snapshot_text(self, symbols: Iterable[str] | None = None) -> str:
        """The `instrument` snapshot frame: the given pairs (all if None) and the assets they use."""
        pairs = [self.pair(s) for s in symbols] if symbols is not None else list(self._pairs.values())
        if symbols is None:
            assets = list(self._assets.values())
        else:
            wanted = {p["base"] for p in pairs} | {p["quote"] for p in pairs}
            assets = [a for a in self._assets.values() if a["id"] in wanted]
        return dumps_exact(
            {"channel": "instrument", "type": "snapshot", "data": {"assets": assets, "pairs": pairs}}
        )
