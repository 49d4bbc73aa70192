"""A replay's producer reports failed deliveries only, and a replay with one fails loudly."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError

from consumers.replay.engine import Deliveries


class _Msg:
    def topic(self) -> str:
        return "backtest.kracked.book.top"


class _Producer:
    def __init__(self, left: int) -> None:
        self.left = left

    def flush(self, timeout: float) -> int:
        return self.left


def test_a_record_that_cannot_be_delivered_fails_the_replay() -> None:
    deliveries = Deliveries()
    deliveries(None, _Msg())  # (never sent with delivery.report.only.error, harmless if it is)
    producer: Any = _Producer(0)
    deliveries.settle(producer)
    deliveries(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE), _Msg())
    with pytest.raises(
        RuntimeError, match=r"1 record\(s\) could not be delivered .*backtest.kracked.book.top"
    ):
        deliveries.settle(producer)


def test_records_left_in_the_queue_fail_the_replay() -> None:
    producer: Any = _Producer(3)
    with pytest.raises(RuntimeError, match="undelivered"):
        Deliveries().settle(producer)


def test_the_producer_reports_failures_only(monkeypatch: pytest.MonkeyPatch) -> None:
    from consumers.replay import engine

    seen: dict[str, Any] = {}
    monkeypatch.setattr(engine, "make_producer", lambda target, **conf: seen.update(conf))
    deliveries = Deliveries()
    deliveries.producer(object())  # type: ignore[arg-type]
    assert seen == {"delivery.report.only.error": True, "on_delivery": deliveries}
