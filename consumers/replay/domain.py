"""Pure rules of a replay: the merge order of several inputs, pacing, and the progress line.

Merge order (documented, deterministic): records are ordered by event time — `ts_event`, else
`ts_recv`, else `ts`, else the Kafka timestamp — and ties are broken by the position of the topic in
the order given on the command line, then the partition number, then the offset. Each partition's own
order is always kept (inputs are merged, never sorted), so per-key order is preserved even where
Kraken's event times are not monotonic.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from schemas.topics import Topic

US = 1_000_000


@dataclass(slots=True)
class ReplayItem:
    """One record to replay, with where it came from."""

    topic_index: int
    topic: Topic
    topic_name: str
    partition: int
    offset: int
    key: bytes | None
    record: dict[str, Any]
    timestamp_ms: int
    event_us: int


def event_time_us(record: Mapping[str, Any], timestamp_ms: int) -> int:
    for name in ("ts_event", "ts_recv", "ts"):
        value = record.get(name)
        if isinstance(value, int):
            return value
    return timestamp_ms * 1000


def merge_key(item: ReplayItem) -> tuple[int, int, int, int]:
    return (item.event_us, item.topic_index, item.partition, item.offset)


def merge(streams: Iterable[Iterable[ReplayItem]]) -> Iterator[ReplayItem]:
    """Merge per-partition streams (each in offset order) by `merge_key`."""
    return heapq.merge(*streams, key=merge_key)


class Pacer:
    """Maps event time to wall time at `speed` (None = as fast as possible)."""

    def __init__(self, speed: float | None) -> None:
        self.speed = speed
        self._first_event: int | None = None
        self._first_wall: float | None = None

    def delay(self, event_us: int, wall_now: float) -> float:
        """Seconds to wait before emitting a record of this event time (0 when due or at max speed)."""
        if self.speed is None:
            return 0.0
        if self._first_event is None or self._first_wall is None:
            self._first_event, self._first_wall = event_us, wall_now
            return 0.0
        due = self._first_wall + (event_us - self._first_event) / US / self.speed
        return max(0.0, due - wall_now)


def parse_speed(text: str) -> float | None:
    """`max` → None; a positive number → that factor (1 = real time)."""
    if text.strip().lower() == "max":
        return None
    value = float(text.rstrip("xX"))  # a pacing factor, never a price: float is fine here
    if value <= 0:
        raise ValueError(f"speed must be positive or 'max', got {text!r}")
    return value


def progress_line(done: int, total: int | None, elapsed_s: float, width: int = 30) -> str:
    """`[#####.....]  12,345/50,000  24.7% 10,234/s ETA 0:03`; total None → no bar."""
    rate = done / elapsed_s if elapsed_s > 0 else 0.0
    if not total:
        return f"{done:,} records {rate:,.0f}/s"
    frac = min(1.0, done / total)
    filled = int(frac * width)
    remaining = (total - done) / rate if rate > 0 else 0.0
    eta = f"{int(remaining // 60)}:{int(remaining % 60):02d}"
    return f"[{'#' * filled}{'.' * (width - filled)}] {done:,}/{total:,} {frac * 100:5.1f}% {rate:,.0f}/s ETA {eta}"
