"""Replay rules: deterministic merge order that keeps each partition's order, pacing, progress line."""

from __future__ import annotations

import pytest

from consumers.replay.domain import Pacer, ReplayItem, event_time_us, merge, parse_speed, progress_line
from schemas.topics import Topic


def item(topic_index: int, partition: int, offset: int, ts: int) -> ReplayItem:
    topic = (Topic.BOOK, Topic.TRADE)[topic_index]
    return ReplayItem(topic_index, topic, topic.value, partition, offset, None, {"ts_event": ts}, 0, ts)


def test_merge_orders_by_event_time_then_topic_then_partition_then_offset() -> None:
    book = [item(0, 0, 0, 10), item(0, 0, 1, 30), item(0, 0, 2, 30)]
    trades_p0 = [item(1, 0, 0, 10), item(1, 0, 1, 20)]
    trades_p1 = [item(1, 1, 0, 20), item(1, 1, 1, 40)]
    merged = [(i.topic_index, i.partition, i.offset) for i in merge([trades_p1, book, trades_p0])]
    assert merged == [(0, 0, 0), (1, 0, 0), (1, 0, 1), (1, 1, 0), (0, 0, 1), (0, 0, 2), (1, 1, 1)]


def test_merge_keeps_partition_order_even_when_event_times_go_back() -> None:
    p0 = [item(0, 0, 0, 50), item(0, 0, 1, 10), item(0, 0, 2, 60)]
    p1 = [item(0, 1, 0, 20)]
    merged = [(i.partition, i.offset) for i in merge([p0, p1])]
    assert [o for p, o in merged if p == 0] == [0, 1, 2]


def test_event_time_falls_back_to_receive_time_then_kafka_time() -> None:
    assert event_time_us({"ts_event": None, "ts_recv": 7}, 1) == 7
    assert event_time_us({"ts": 9}, 1) == 9
    assert event_time_us({}, 3) == 3000


def test_pacer_real_time_and_faster_and_max() -> None:
    real = Pacer(1.0)
    assert real.delay(1_000_000, 100.0) == 0.0
    assert real.delay(3_000_000, 100.5) == pytest.approx(1.5)
    fast = Pacer(10.0)
    fast.delay(0, 0.0)
    assert fast.delay(10_000_000, 0.0) == pytest.approx(1.0)
    assert Pacer(None).delay(10**12, 0.0) == 0.0


def test_parse_speed_and_progress() -> None:
    assert parse_speed("max") is None and parse_speed("1") == 1.0 and parse_speed("10x") == 10.0
    with pytest.raises(ValueError):
        parse_speed("0")
    line = progress_line(500, 1000, 2.0)
    assert "50.0%" in line and "250/s" in line and "ETA 0:02" in line
    assert progress_line(5, None, 1.0) == "5 records 5/s"
