"""Load the Parquet dataset written by `kracked parquet` with pandas: top of book in the original kracked's
wide layout (`ap0..ap9, av0..av9, bp0..bp9, bv0..bv9`), exact decimals (Python `Decimal` objects)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pandas as pd


def main() -> int:
    root = Path(os.environ.get("KRACKED_PARQUET_DIR", "data/parquet"))
    prefix = os.environ.get("KRACKED_TOPIC_PREFIX", "")
    wide = root / f"{prefix}kracked.book.top.wide"
    if not wide.is_dir():
        print(
            f"no wide book dataset at {wide}: run `kracked book` and `kracked parquet` first", file=sys.stderr
        )
        return 1
    frame = pd.read_parquet(wide)
    print(frame[["symbol", "timestamp", "bp0", "bv0", "ap0", "av0"]].tail(10).to_string(index=False))
    spread = frame["ap0"] - frame["bp0"]  # Decimal arithmetic, exact
    print("mean spread per symbol:")
    print(spread.groupby(frame["symbol"]).apply(lambda s: sum(s) / len(s)).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
