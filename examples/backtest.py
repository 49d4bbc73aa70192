"""A backtest on the live code path: replay → bars (in-process) → toy strategy → signals → orders (dry-run).

1. `kracked replay` copies `kraken.trade` and `kraken.instrument` under the `backtest.` prefix and runs
   the bars service in-process on them (the very class `kracked bars` runs);
2. a toy strategy reads `backtest.kracked.bars` (1-minute bars) and emits a signal whenever the close
   crosses its 5-bar moving average (exact Decimal arithmetic);
3. the order service, in dry-run, checks each signal against the pair's rules and the risk limits and
   writes what it would have sent to `backtest.kracked.orders`.

Settings from the environment (`KRACKED_*`; `BACKTEST_PREFIX`, default `backtest.`). Run it twice: the
second run reports every signal as a duplicate, because the order service never executes a signal id
twice.
"""

from __future__ import annotations

import os
import sys
from collections import Counter, deque
from decimal import Decimal
from typing import Any

from confluent_kafka import Producer

from consumers.orders.domain import Mode
from consumers.orders.service import OrdersService
from consumers.orders.settings import OrdersSettings
from consumers.replay.__main__ import main as replay
from consumers.runtime import Runtime, RuntimeOptions, read_topic
from kracked.kafka import ensure_topics, make_producer
from kracked.settings import KafkaSettings
from schemas.serde import Serde
from schemas.topics import Topic

WINDOW = 5


def strategy(bars: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Moving-average crossover on 1-minute closes: one signal per crossing (pure, no I/O)."""
    signals = []
    closes: dict[str, deque[Decimal]] = {}
    above: dict[str, bool] = {}
    # a replay is deterministic: replaying the same range again yields the same bars, counted once
    unique = {(b["symbol"], b["interval_s"], b["start"]): b for b in bars}
    for bar in sorted(unique.values(), key=lambda b: (b["end"], b["symbol"])):
        if bar["interval_s"] != 60:
            continue
        window = closes.setdefault(bar["symbol"], deque(maxlen=WINDOW))
        close = Decimal(bar["close"])
        window.append(close)
        if len(window) < WINDOW:
            continue
        now_above = close > sum(window) / WINDOW
        if bar["symbol"] in above and now_above != above[bar["symbol"]]:
            signals.append(
                {
                    "signal_id": f"ma{WINDOW}-{bar['symbol']}-{bar['end']}",
                    "created_at": bar["end"],
                    "strategy": f"ma{WINDOW}-crossover",
                    "symbol": bar["symbol"],
                    "side": "buy" if now_above else "sell",
                    "order_type": "limit",
                    "quantity": "0.01",
                    "limit_price": bar["close"],
                }
            )
        above[bar["symbol"]] = now_above
    return signals


def main() -> int:
    base = KafkaSettings.from_env()
    prefix = os.environ.get("BACKTEST_PREFIX", "backtest.")
    target = KafkaSettings(base.bootstrap_servers, base.schema_registry_url, prefix)

    # 1. replay trades (+ instruments) into the backtest prefix, through bars in-process
    code = replay(
        ["--topics", "kraken.instrument,kraken.trade", "--republish", "--through", "bars", "--into", prefix]
    )
    if code:
        return code

    # 2. the strategy: bars in, signals out
    signals = strategy(read_topic(target, Topic.BARS))
    ensure_topics(target, [Topic.SIGNALS.name_with(prefix)])
    serde = Serde(target.schema_registry_url, prefix)
    producer: Producer = make_producer(target)
    for signal in signals:
        producer.produce(
            Topic.SIGNALS.name_with(prefix),
            key=signal["symbol"].encode(),
            value=serde.encode(Topic.SIGNALS, signal),
        )
    producer.flush(30)
    print(f"strategy: {len(signals)} signals")

    # 3. the order service in dry-run, on the same code path as `kracked orders`
    orders = OrdersService(OrdersSettings(mode=Mode.DRY_RUN), target)
    Runtime(orders, target, RuntimeOptions(group_id=f"{prefix}orders", stop_when_idle_s=3.0)).run()
    outcomes = [
        o for o in read_topic(target, Topic.ORDERS) if o["signal_id"] in {s["signal_id"] for s in signals}
    ]
    print("orders:", dict(Counter(o["status"] for o in outcomes)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
