"""Benchmark: kracked's Parquet writer vs pyarrow writing the same rows directly, in the same run.

Typical record: a `kraken.trade` (symbol, type, side, price, qty, ord_type, trade_id, ts_event,
ts_recv) with decimal text, spread over a few symbols. kracked: `ParquetWriter.add` per record, then
`flush_all` (per-partition grouping into symbol/date files, decimal checks, zstd, fsync, rename).
Baseline: `pa.Table.from_pylist` with the same Arrow types (decimal text cast to decimal128(38, 18)),
`pq.write_table` zstd into one file, no fsync. Prints rows/s for both and the ratio (target: kracked
≥ 300,000 rows/s). Usage: `python bench/bench_parquet.py [rows]`.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from anywhere, like the other benchmarks

from consumers.parquet.arrow_schema import load_avro_schema, table_spec  # noqa: E402
from consumers.parquet.writer import ParquetWriter  # noqa: E402
from schemas.topics import Topic, schema_dir  # noqa: E402

SYMBOLS = ("BTC/USD", "ETH/USD", "SOL/USD", "DOGE/USD")
BASE_TS = 1_731_394_244_897_594


def make_records(n: int) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        out.append(
            {
                "symbol": SYMBOLS[i % len(SYMBOLS)],
                "type": "update",
                "side": "buy" if i % 3 else "sell",
                "price": f"{89000 + i % 1000}.{i % 10}",
                "qty": f"0.{i % 100_000_000:08d}",
                "ord_type": "limit" if i % 5 else "market",
                "trade_id": 75_666_635 + i,
                "ts_event": BASE_TS + i * 1_000,
                "ts_recv": BASE_TS + i * 1_000 + 250,
            }
        )
    return out


def bench_baseline(records: list[dict[str, Any]], schema: dict[str, Any], folder: Path) -> float:
    spec = table_spec(schema)
    staging = pa.schema(
        [pa.field(c.name, c.staging if c.staging is not None else c.type) for c in spec.columns]
    )
    start = time.perf_counter()
    table = pa.Table.from_pylist(records, schema=staging)
    table = table.cast(spec.arrow_schema)
    pq.write_table(table, folder / "baseline.parquet", compression="zstd")
    return time.perf_counter() - start


def bench_kracked(records: list[dict[str, Any]], folder: Path) -> float:
    writer = ParquetWriter(folder)
    add = writer.add
    topic = Topic.TRADE.value
    start = time.perf_counter()
    for offset, record in enumerate(records):
        add(topic, 0, offset, record)
    commits = writer.flush_all()
    elapsed = time.perf_counter() - start
    if commits != [(topic, 0, len(records))]:
        raise SystemExit(f"unexpected commits {commits}")
    return elapsed


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 300_000
    schema = load_avro_schema(schema_dir() / Topic.TRADE.schema_file)
    records = make_records(n)
    tmp = Path(tempfile.mkdtemp(prefix="bench-parquet-"))
    try:
        best_base = min(bench_baseline(records, schema, tmp) for _ in range(3))
        best_ours = float("inf")
        for i in range(3):
            best_ours = min(best_ours, bench_kracked(records, tmp / f"run{i}"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    base_rate = n / best_base
    our_rate = n / best_ours
    print(f"rows: {n} kraken.trade records, {len(SYMBOLS)} symbols, best of 3")
    print(f"pyarrow direct (from_pylist + cast + write_table): {base_rate:,.0f} rows/s")
    print(f"kracked ParquetWriter (add + flush_all, fsync+rename): {our_rate:,.0f} rows/s")
    print(f"ratio kracked/pyarrow: {our_rate / base_rate:.2f} (target: kracked >= 300,000 rows/s)")


if __name__ == "__main__":
    main()
