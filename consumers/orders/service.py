"""The `orders` service: Kafka in/out around `consumers.orders.domain.OrderProcessor`.

Reads `kracked.signals` (orders), `kraken.instrument` (pair precision and minimums) and `kraken.ticker`
(last prices for notional checks), and writes one `kracked.orders` record per signal (keyed by
signal_id; the topic is compacted and is the service's memory). At start the whole `kracked.orders`
topic is read back, so a signal id handled before — in any mode — is never executed again, across
restarts and replays of the signal topic. In validate/live the `submitted` record is committed (with
the offsets) before the HTTP call, so a crash during the call leaves a pending entry that is looked
up at Kraken on restart instead of being sent twice.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from consumers.orders.domain import Mode, OrderProcessor
from consumers.orders.settings import OrdersSettings
from consumers.runtime import BaseService, Inbound, Outbox, TopicPartitionKey, read_topic
from kracked import metrics
from kracked.settings import KafkaSettings
from schemas.topics import Topic

log = logging.getLogger(__name__)

OUTCOMES = metrics.counter("kracked_orders_outcomes_total", "order outcomes by status", ("status",))


def now_us() -> int:
    return time.time_ns() // 1000


class OrdersService(BaseService):
    name = "orders"
    inputs: tuple[Topic, ...] = (Topic.SIGNALS, Topic.INSTRUMENT, Topic.TICKER)
    outputs: tuple[Topic, ...] = (Topic.ORDERS,)

    def __init__(self, settings: OrdersSettings, kafka: KafkaSettings | None, gateway: Any = None) -> None:
        self.settings = settings
        self.kafka = kafka
        if gateway is None and settings.mode is not Mode.DRY_RUN:
            from consumers.orders.exchange import KrakenGateway  # ccxt only when orders can be sent

            gateway = KrakenGateway.from_settings(settings)
        self.gateway = gateway
        self.processor = OrderProcessor(
            mode=settings.mode,
            limits=settings.risk_limits(),
            gateway=gateway,
            client_id_field=settings.client_id_field,
        )
        self._restored = False
        self._reconciled: list[dict[str, Any]] = []
        self._last_cancel_after = 0.0

    def handle(self, item: Inbound, out: Outbox) -> None:
        record = item.record
        if item.topic is Topic.INSTRUMENT:
            self.processor.observe_instrument(record)
            return
        if item.topic is Topic.TICKER:
            if record.get("last"):
                self.processor.observe_price(record["symbol"], record["last"])
            return

        def write_ahead(submitted: dict[str, Any]) -> None:
            out.emit(Topic.ORDERS, submitted["signal_id"], submitted)
            out.commit_now()

        handled = self.processor.handle(
            record,
            now_us(),
            source_partition=item.partition,
            source_offset=item.offset,
            on_submitted=write_ahead,
        )
        if handled.invalid is not None:
            raise ValueError(handled.invalid)  # the runtime dead-letters it with topic/partition/offset
        if handled.outcome is not None:
            self._publish(handled.outcome, out)

    def _publish(self, outcome: dict[str, Any], out: Outbox) -> None:
        OUTCOMES.labels(outcome["status"]).inc()
        log.info(
            "signal %s (%s %s %s): %s%s",
            outcome["signal_id"],
            outcome["side"],
            outcome["quantity"],
            outcome["symbol"],
            outcome["status"],
            f" ({outcome['reason']})" if outcome.get("reason") else "",
        )
        out.emit(Topic.ORDERS, outcome["signal_id"], outcome)

    def tick(self, now: int, out: Outbox, caught_up: bool) -> None:
        if self._reconciled:
            for outcome in self._reconciled:
                self._publish(outcome, out)
            self._reconciled = []
        # Kraken's dead man's switch: re-armed every third of its timeout while the service lives
        due = time.monotonic() - self._last_cancel_after > self.settings.cancel_after_s / 3
        if self.settings.cancel_after_s and self.gateway is not None and due:
            self.gateway.cancel_all_after(self.settings.cancel_after_s)
            self._last_cancel_after = time.monotonic()

    def restore(self, committed: dict[TopicPartitionKey, tuple[int, str]]) -> None:
        if self._restored or self.kafka is None:
            return
        self._restored = True
        # instruments first, so that the first signal is checked against the pair's rules even when
        # the signal topic is read before the instrument topic (no order between topics in Kafka)
        for record in read_topic(self.kafka, Topic.INSTRUMENT):
            self.processor.observe_instrument(record)
        count = 0
        for record in read_topic(self.kafka, Topic.ORDERS):
            self.processor.restore(record)
            count += 1
        self._reconciled = self.processor.reconcile_pending(now_us())
        log.info(
            "orders: %d earlier outcomes restored, %d pending orders reconciled", count, len(self._reconciled)
        )
