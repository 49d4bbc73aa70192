"""Benchmark: `BookKeeper` updates/s with a checksum check on every record, against baselines run alike.

Records are `kraken.book` record dicts held in memory (no Kafka, no decode), so the figure is the domain
cost alone. Two sources:
* `sdk` (default): the real python-kraken-sdk capture (1 snapshot + 509 updates, BTC/USD depth 10)
  looped with a resync: every loop is a new snapshot with a new epoch, as after a resubscribe;
* `synthetic`: a random-walk market over several symbols and a chosen depth, checksums computed by a
  naive independent model (dict + sort + `schemas.checksum.l2_checksum`).

Baselines, measured in the same run over the same records:
* `iterate`: touch every field a consumer must read (symbol, type, epoch, checksum, every level's price
  and qty) — a stand-in for the floor cost of handling a decoded record;
* `naive`: a straightforward rebuild (`to_fixed` per value, dict per side, sort + `l2_checksum` per
  record) — what the incremental book is meant to beat.

Usage: `python bench/bench_book.py [--records 300000] [--source sdk|synthetic] [--depth 10]`.
`--from-kafka` is reserved for the Kafka end-to-end variant (read the records from a topic first).
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from sortedcontainers import SortedDict

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from consumers.book.domain import BookKeeper, Verdict  # noqa: E402
from schemas.checksum import fixed_to_text, l2_checksum, to_fixed  # noqa: E402

CAPTURE = ROOT / "tests" / "fixtures" / "kraken" / "python-kraken-sdk_orderbook-v2.json"
TARGET = 200_000  # updates/s

Record = dict[str, Any]


# -- record sources -----------------------------------------------------------------------------------


def _record(item: dict[str, Any], kind: str, epoch: int, pp: int, qp: int, depth: int) -> Record:
    return {
        "symbol": item["symbol"],
        "type": kind,
        "bids": [{"price": str(lv["price"]), "qty": str(lv["qty"])} for lv in item.get("bids", [])],
        "asks": [{"price": str(lv["price"]), "qty": str(lv["qty"])} for lv in item.get("asks", [])],
        "checksum": int(item["checksum"]),
        "price_precision": pp,
        "qty_precision": qp,
        "depth": depth,
        "epoch": epoch,
        "checksum_ok": True,
        "ts_event": None,
        "ts_recv": 0,
    }


def sdk_records(n: int) -> list[Record]:
    """The real capture looped: each loop = new snapshot (new epoch) + its 509 updates."""
    raw = json.loads(CAPTURE.read_text(), parse_float=str)
    loop: list[tuple[dict[str, Any], str]] = [(raw["init"]["data"][0], "snapshot")]
    loop += [(m["data"][0], "update") for m in raw["updates"]]
    records: list[Record] = []
    epoch = 0
    while len(records) < n:
        epoch += 1
        for item, kind in loop:
            records.append(_record(item, kind, epoch, 1, 8, 10))
            if len(records) == n:
                break
    return records


class _NaiveSide:
    """Independent model of one side: a SortedDict price→qty (sortedcontainers), not the keeper's lists."""

    def __init__(self, descending: bool) -> None:
        self.levels: SortedDict = SortedDict()
        self.descending = descending

    def best(self, n: int) -> list[tuple[int, int]]:
        keys = self.levels.keys()
        chosen = keys[-n:][::-1] if self.descending else keys[:n]
        return [(k, self.levels[k]) for k in chosen]

    def truncate(self, depth: int) -> None:
        while len(self.levels) > depth:
            self.levels.popitem(0 if self.descending else -1)


def synthetic_records(n: int, depth: int, symbols: int = 4, seed: int = 7) -> list[Record]:
    """A random-walk market; every record carries the checksum of an independent naive model."""
    rng = random.Random(seed)
    pp, qp = 1, 8
    names = [f"SYM{i}/USD" for i in range(symbols)]
    books: dict[str, tuple[_NaiveSide, _NaiveSide]] = {}
    mids: dict[str, int] = {}
    records: list[Record] = []

    def level(price: int, qty: int) -> dict[str, str]:
        return {"price": fixed_to_text(price, pp), "qty": fixed_to_text(qty, qp)}

    def rand_qty() -> int:
        return rng.choice((rng.randint(1, 10**8), rng.randint(1, 10**6) * 100, 10**7, 5100))

    for name in names:
        mid = rng.randint(200_000, 900_000)
        mids[name] = mid
        bids, asks = _NaiveSide(True), _NaiveSide(False)
        for i in range(depth):
            bids.levels[mid - 1 - i * rng.randint(1, 3)] = rand_qty()
            asks.levels[mid + 1 + i * rng.randint(1, 3)] = rand_qty()
        books[name] = (bids, asks)
        snap = {
            "symbol": name,
            "bids": [level(p, q) for p, q in bids.best(depth)],
            "asks": [level(p, q) for p, q in asks.best(depth)],
            "checksum": l2_checksum(asks.best(10), bids.best(10)),
        }
        records.append(_record(snap, "snapshot", 1, pp, qp, depth))

    while len(records) < n:
        name = rng.choice(names)
        bids, asks = books[name]
        changes: dict[str, list[dict[str, str]]] = {"bids": [], "asks": []}
        for _ in range(rng.choice((1, 1, 1, 2, 2, 3))):
            is_bid = rng.random() < 0.5
            side = bids if is_bid else asks
            out = changes["bids" if is_bid else "asks"]
            best = side.best(depth)
            roll = rng.random()
            if roll < 0.55 and best:  # change the qty of a level, mostly near the top
                price = best[min(int(rng.expovariate(0.4)), len(best) - 1)][0]
                qty = rand_qty()
                side.levels[price] = qty
                out.append(level(price, qty))
            elif roll < 0.8 and len(best) > 2:  # delete a level, refill one beyond the depth
                price = best[min(int(rng.expovariate(0.4)), len(best) - 1)][0]
                del side.levels[price]
                out.append(level(price, 0))
                worst = best[-1][0]
                refill = worst - rng.randint(1, 3) if is_bid else worst + rng.randint(1, 3)
                if refill > 0 and refill not in side.levels:
                    qty = rand_qty()
                    side.levels[refill] = qty
                    out.append(level(refill, qty))
            else:  # insert a new level inside the book (pushes the last one out: truncation)
                other = asks if is_bid else bids
                other_best = other.best(1)
                top = best[0][0] if best else mids[name]
                if is_bid:
                    limit = other_best[0][0] - 1 if other_best else top + 5
                    price = rng.randint(top - 8, min(top + 2, limit))
                else:
                    limit = other_best[0][0] + 1 if other_best else top - 5
                    price = rng.randint(max(top - 2, limit), top + 8)
                if price <= 0:
                    continue
                qty = rand_qty()
                side.levels[price] = qty
                out.append(level(price, qty))
        if not changes["bids"] and not changes["asks"]:
            continue
        bids.truncate(depth)
        asks.truncate(depth)
        item = {
            "symbol": name,
            "bids": changes["bids"],
            "asks": changes["asks"],
            "checksum": l2_checksum(asks.best(10), bids.best(10)),
        }
        records.append(_record(item, "update", 1, pp, qp, depth))
    return records


# -- measured runs ------------------------------------------------------------------------------------


def run_iterate(records: Sequence[Record]) -> int:
    touched = 0
    for r in records:
        r["symbol"]
        r["type"]
        r["epoch"]
        r["checksum"]
        for lv in r["bids"]:
            lv["price"]
            lv["qty"]
        for lv in r["asks"]:
            lv["price"]
            lv["qty"]
        touched += 1
    return touched


def run_keeper(records: Sequence[Record]) -> int:
    keeper = BookKeeper()
    ok = Verdict.OK
    good = 0
    for r in records:
        if keeper.process(r).verdict is ok:
            good += 1
    return good


def run_naive(records: Sequence[Record]) -> int:
    books: dict[str, tuple[dict[int, int], dict[int, int], int]] = {}
    good = 0
    for r in records:
        pp, qp = r["price_precision"], r["qty_precision"]
        if r["type"] == "snapshot":
            books[r["symbol"]] = ({}, {}, r["depth"])
        bids, asks, depth = books[r["symbol"]]
        for side, levels in ((bids, r["bids"]), (asks, r["asks"])):
            for lv in levels:
                price, qty = to_fixed(lv["price"], pp), to_fixed(lv["qty"], qp)
                if qty:
                    side[price] = qty
                else:
                    side.pop(price, None)
        b = sorted(bids, reverse=True)
        a = sorted(asks)
        for k in b[depth:]:
            del bids[k]
        for k in a[depth:]:
            del asks[k]
        if l2_checksum([(k, asks[k]) for k in a[:10]], [(k, bids[k]) for k in b[:10]]) == r["checksum"]:
            good += 1
    return good


def measure(
    fn: Callable[[Sequence[Record]], int], records: Sequence[Record], repeat: int
) -> tuple[float, int]:
    """Best wall time of `repeat` runs (garbage collector on, as in a service)."""
    best = float("inf")
    result = 0
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        result = fn(records)
        best = min(best, time.perf_counter() - start)
    return best, result


def report(name: str, seconds: float, n: int, baseline: float | None = None) -> float:
    rate = n / seconds
    extra = f"  ({baseline / seconds:.2f}× the keeper's speed)" if baseline else ""
    print(
        f"{name:<10} {seconds * 1e3:9.1f} ms  {rate:>12,.0f} records/s  {1e6 * seconds / n:6.2f} µs/record{extra}"
    )
    return rate


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=300_000)
    parser.add_argument("--source", choices=("sdk", "synthetic"), default="sdk")
    parser.add_argument("--depth", type=int, default=10, help="synthetic source only")
    parser.add_argument("--symbols", type=int, default=4, help="synthetic source only")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument(
        "--from-kafka",
        action="store_true",
        help="read the records from a kraken.book topic (not yet available)",
    )
    args = parser.parse_args(list(argv) if argv is not None else None)
    if args.from_kafka:
        print("--from-kafka: not implemented yet (the Kafka variant is added with the book service)")
        return 2

    t0 = time.perf_counter()
    if args.source == "sdk":
        records = sdk_records(args.records)
    else:
        records = synthetic_records(args.records, args.depth, args.symbols)
    n = len(records)
    updates = sum(1 for r in records if r["type"] == "update")
    levels = sum(len(r["bids"]) + len(r["asks"]) for r in records)
    print(
        f"source={args.source} records={n:,} (updates {updates:,}, snapshots {n - updates:,}, "
        f"{levels / n:.2f} levels/record) built in {time.perf_counter() - t0:.1f}s; best of {args.repeat}"
    )

    t_iter, _ = measure(run_iterate, records, args.repeat)
    t_keep, good = measure(run_keeper, records, args.repeat)
    if good != n:
        print(f"ERROR: only {good:,} of {n:,} records verified")
        return 1
    report("iterate", t_iter, n)
    rate = report("keeper", t_keep, n)
    if not args.skip_naive:
        t_naive, naive_good = measure(run_naive, records, 1)
        if naive_good != n:
            print(f"ERROR: naive model verified only {naive_good:,} of {n:,}")
            return 1
        report("naive", t_naive, n)
        print(f"speed-up keeper vs naive rebuild: {t_naive / t_keep:.2f}×")
    print(f"keeper cost vs iterate baseline: {t_keep / t_iter:.2f}× (every record checksum-verified)")
    verdict = "meets" if rate >= TARGET else "MISSES"
    print(f"keeper {rate:,.0f} updates/s {verdict} the target of {TARGET:,}/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
