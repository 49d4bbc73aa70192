"""Query the Parquet dataset written by `kracked parquet` with DuckDB: 1-minute VWAP per symbol from trades.

Prices and quantities are DECIMAL(38,18) columns, timestamps TIMESTAMP WITH TIME ZONE (µs), and
`symbol`/`date` come from the folder names (hive partitioning). A product of two DECIMAL(38,18) needs
36 decimals and overflows DECIMAL(38): cast to a smaller scale first (Kraken sends at most 10 decimals).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import duckdb


def main() -> int:
    root = Path(os.environ.get("KRACKED_PARQUET_DIR", "data/parquet"))
    prefix = os.environ.get("KRACKED_TOPIC_PREFIX", "")
    trades = root / f"{prefix}kraken.trade"
    if not trades.is_dir():
        print(f"no trades dataset at {trades}: run `kracked parquet` first", file=sys.stderr)
        return 1
    query = f"""
        select symbol, strftime(time_bucket(interval 1 minute, ts_event), '%Y-%m-%dT%H:%MZ') as minute,
               sum(price::decimal(28, 10) * qty::decimal(28, 10)) / sum(qty) as vwap, sum(qty) as volume, count(*) as trades
        from read_parquet('{trades}/**/*.parquet', hive_partitioning = true)
        group by all order by symbol, minute
    """
    for row in duckdb.connect().execute(query).fetchall():
        print(*row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
