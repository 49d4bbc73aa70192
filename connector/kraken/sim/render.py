"""Frame text for the synthetic market, built from string templates (no json.dumps on the hot path).

Numbers are rendered from fixed-point integers with exactly the pair's precision (`fixed_to_text`),
which is also what Kraken's checksum hashes (reference §4.2), e.g. `"price":1873.30,"qty":0.00005100`.
Field order follows the real captures (book: symbol, bids, asks, checksum, timestamp).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from schemas.checksum import fixed_to_text

from .book import Book, L3Event, Level
from .instruments import PairSpec
from .market import Candle, SymbolMarket, Trade
from .wire import dumps_exact, ts_ns, ts_us


def ratio(num: int, den: int) -> int:
    """num / den rounded half away from zero (integers only)."""
    q, r = divmod(abs(num), den)
    if 2 * r >= den:
        q += 1
    return q if num >= 0 else -q


class Renderer:
    """Per-symbol text templates."""

    def __init__(self, spec: PairSpec, order_id: Callable[[int], str]) -> None:
        self.spec = spec
        self.order_id = order_id
        self.pp = spec.price_precision
        self.qp = spec.qty_precision
        self.sym = spec.symbol
        self._book_update = '{"channel":"book","type":"update","data":[{"symbol":"' + self.sym + '","bids":['
        self._book_snapshot = (
            '{"channel":"book","type":"snapshot","data":[{"symbol":"' + self.sym + '","bids":['
        )
        self._trade_item = '{"symbol":"' + self.sym + '","side":"'
        self._prices: dict[int, str] = {}
        self._l3_head = '","data":[{"symbol":"' + self.sym + '","bids":['

    def p(self, price: int) -> str:
        """Price text, cached: the same few hundred prices recur event after event."""
        text = self._prices.get(price)
        if text is None:
            if len(self._prices) > 100_000:
                self._prices.clear()
            text = self._prices[price] = fixed_to_text(price, self.pp)
        return text

    def q(self, qty: int) -> str:
        return fixed_to_text(qty, self.qp)

    # --- book (L2) ----------------------------------------------------------------------------------

    def _levels(self, levels: Iterable[tuple[int, int]]) -> str:
        p, qp = self.p, self.qp
        return ",".join([f'{{"price":{p(price)},"qty":{fixed_to_text(q, qp)}}}' for price, q in levels])

    def book_update(
        self, bids: list[tuple[int, int]], asks: list[tuple[int, int]], checksum: int, ts: str
    ) -> str:
        return (
            f'{self._book_update}{self._levels(bids)}],"asks":[{self._levels(asks)}],'
            f'"checksum":{checksum},"timestamp":"{ts}"}}]}}'
        )

    def book_snapshot(self, book: Book, depth: int, ts: str) -> str:
        bids = ((lv.price, lv.qty) for lv in book.bids.top(depth))
        asks = ((lv.price, lv.qty) for lv in book.asks.top(depth))
        return (
            f'{self._book_snapshot}{self._levels(bids)}],"asks":[{self._levels(asks)}],'
            f'"checksum":{book.l2_checksum()},"timestamp":"{ts}"}}]}}'
        )

    # --- level3 -------------------------------------------------------------------------------------

    def _l3_events(self, events: list[L3Event]) -> str:
        pp, qp, order_id = self.pp, self.qp, self.order_id
        return ",".join(
            f'{{"event":"{ev}","order_id":"{order_id(oid)}","limit_price":{fixed_to_text(p, pp)},'
            f'"order_qty":{fixed_to_text(q, qp)},"timestamp":"{ts_ns(t)}"}}'
            for ev, oid, p, q, t in events
        )

    def _l3_orders(self, levels: Iterable[Level]) -> str:
        pp, qp, order_id = self.pp, self.qp, self.order_id
        return ",".join(
            f'{{"order_id":"{order_id(o.oid)}","limit_price":{fixed_to_text(lv.price, pp)},'
            f'"order_qty":{fixed_to_text(o.qty, qp)},"timestamp":"{ts_ns(o.ts_ns)}"}}'
            for lv in levels
            for o in lv.orders
        )

    def l3_update(self, bids: list[L3Event], asks: list[L3Event], checksum: int, t_ns: int) -> str:
        return (
            f'{{"channel":"level3","type":"update{self._l3_head}{self._l3_events(bids)}],'
            f'"asks":[{self._l3_events(asks)}],"checksum":{checksum},"timestamp":"{ts_ns(t_ns)}"}}]}}'
        )

    def l3_snapshot(self, book: Book, depth: int, t_ns: int) -> str:
        return (
            f'{{"channel":"level3","type":"snapshot{self._l3_head}{self._l3_orders(book.bids.top(depth))}],'
            f'"asks":[{self._l3_orders(book.asks.top(depth))}],"checksum":{book.l3_checksum()},'
            f'"timestamp":"{ts_ns(t_ns)}"}}]}}'
        )

    # --- trade --------------------------------------------------------------------------------------

    def _trade(self, t: Trade) -> str:
        return (
            f'{self._trade_item}{t.side}","price":{self.p(t.price)},'
            f'"qty":{fixed_to_text(t.qty, self.qp)},"ord_type":"{t.ord_type}","trade_id":{t.trade_id},'
            f'"timestamp":"{ts_us(t.ts_ns)}"}}'
        )

    def trades(self, trades: list[Trade], kind: str = "update") -> str:
        body = ",".join(self._trade(t) for t in trades)
        return f'{{"channel":"trade","type":"{kind}","data":[{body}]}}'

    # --- ticker -------------------------------------------------------------------------------------

    def ticker(self, m: SymbolMarket, kind: str, t_ns: int) -> str:
        bid, bid_qty, ask, ask_qty = m.book.bbo()
        st = m.activate_ticker()
        p = self.p
        last = m.last_price if m.last_price is not None else bid
        open_ = st.open if st.open is not None else last
        vwap = ratio(st.pv, st.volume) if st.volume else last
        change = last - open_
        pct = ratio(change * 10_000, open_) if open_ else 0
        return (
            f'{{"channel":"ticker","type":"{kind}","data":[{{"symbol":"{self.sym}",'
            f'"bid":{p(bid)},"bid_qty":{self.q(bid_qty)},"ask":{p(ask)},"ask_qty":{self.q(ask_qty)},'
            f'"last":{p(last)},"volume":{self.q(st.volume)},"vwap":{p(vwap)},'
            f'"low":{p(st.low if st.low is not None else last)},"high":{p(st.high if st.high is not None else last)},'
            f'"change":{p(change)},"change_pct":{fixed_to_text(pct, 2)},"timestamp":"{ts_us(t_ns)}"}}]}}'
        )

    # --- ohlc ---------------------------------------------------------------------------------------

    def candle(self, c: Candle, interval: int) -> str:
        p = self.p
        vwap = ratio(c.pv, c.volume) if c.volume else c.close
        end_ns = c.begin_ns + interval * 60 * 1_000_000_000
        return (
            f'{{"symbol":"{self.sym}","open":{p(c.open)},"high":{p(c.high)},"low":{p(c.low)},'
            f'"close":{p(c.close)},"trades":{c.count},"volume":{self.q(c.volume)},"vwap":{p(vwap)},'
            f'"interval_begin":"{ts_ns(c.begin_ns)}","interval":{interval},"timestamp":"{ts_us(end_ns)}"}}'
        )

    def ohlc(self, candles: list[Candle], interval: int, kind: str, t_ns: int) -> str:
        body = ",".join(self.candle(c, interval) for c in candles)
        return f'{{"channel":"ohlc","type":"{kind}","timestamp":"{ts_ns(t_ns)}","data":[{body}]}}'


def private_frame(channel: str, kind: str, data: list[dict[str, Any]], sequence: int) -> str:
    """executions / balances message (reference §3.3, §3.4): carries the subscription's `sequence`."""
    return dumps_exact({"channel": channel, "type": kind, "data": data, "sequence": sequence})
