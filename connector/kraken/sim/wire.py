"""Wire-text helpers: RFC3339 timestamps, exact-number JSON, and raw text spans of JSON values.

Kraken sends prices and quantities as JSON numbers that must keep their exact text (reference §1.2),
so reference data read from captures is parsed with `loads_exact` (numbers stay their original token)
and written back with `dumps_exact` (tokens re-emitted untouched). `value_spans` cuts a JSON document
into the original text of each element, so replay can send a captured message byte for byte.
"""

from __future__ import annotations

import json
import time
from typing import Any

_DECODER = json.JSONDecoder()
_WS = " \t\r\n"


class Num(str):
    """A JSON number kept as its original token (`1.00`, `1e-08` stay exactly that)."""

    __slots__ = ()


def loads_exact(text: str) -> Any:
    """json.loads where every non-integer number becomes a `Num` holding its exact token."""
    return json.loads(text, parse_float=Num)


def dumps_exact(obj: Any) -> str:
    """Compact JSON; `Num` values are written as bare number tokens, everything else as json.dumps."""
    if isinstance(obj, Num):
        return str(obj)
    if isinstance(obj, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{dumps_exact(v)}" for k, v in obj.items()) + "}"
    if isinstance(obj, list | tuple):
        return "[" + ",".join(dumps_exact(v) for v in obj) + "]"
    return json.dumps(obj, separators=(",", ":"))


def dumps(obj: Any) -> str:
    """Compact JSON for control messages (acks, errors, status)."""
    return json.dumps(obj, separators=(",", ":"))


def _skip_ws(text: str, i: int) -> int:
    while i < len(text) and text[i] in _WS:
        i += 1
    return i


def value_spans(text: str, start: int = 0) -> tuple[Any, int, int]:
    """Decode the JSON value at `start` (after whitespace): (value, start, end) of its original text."""
    i = _skip_ws(text, start)
    value, end = _DECODER.raw_decode(text, i)
    return value, i, end


def array_element_spans(text: str, start: int) -> list[tuple[int, int]]:
    """Spans of every element of the JSON array that begins at `start` (which must point at '[')."""
    i = _skip_ws(text, start)
    if text[i] != "[":
        raise ValueError("not a JSON array")
    spans: list[tuple[int, int]] = []
    i = _skip_ws(text, i + 1)
    if text[i] == "]":
        return spans
    while True:
        _, s, e = value_spans(text, i)
        spans.append((s, e))
        i = _skip_ws(text, e)
        if text[i] == ",":
            i += 1
            continue
        if text[i] == "]":
            return spans
        raise ValueError(f"bad JSON array at offset {i}")


def object_member_spans(text: str, start: int) -> dict[str, tuple[int, int]]:
    """Spans of every member value of the JSON object that begins at `start` (pointing at '{')."""
    i = _skip_ws(text, start)
    if text[i] != "{":
        raise ValueError("not a JSON object")
    members: dict[str, tuple[int, int]] = {}
    i = _skip_ws(text, i + 1)
    if text[i] == "}":
        return members
    while True:
        key, _, e = value_spans(text, i)
        i = _skip_ws(text, e)
        if text[i] != ":":
            raise ValueError(f"bad JSON object at offset {i}")
        _, s, e = value_spans(text, i + 1)
        members[str(key)] = (s, e)
        i = _skip_ws(text, e)
        if text[i] == ",":
            i = _skip_ws(text, i + 1)
            continue
        if text[i] == "}":
            return members
        raise ValueError(f"bad JSON object at offset {i}")


class TimeFormatter:
    """RFC3339 UTC text from integer epoch nanoseconds; caches the seconds prefix (hot path)."""

    __slots__ = ("_last_ns", "_last_us", "_prefix", "_sec")

    def __init__(self) -> None:
        self._sec = -1
        self._prefix = ""
        self._last_ns = -1
        self._last_us = ""

    def _seconds(self, sec: int) -> str:
        if sec != self._sec:
            self._sec = sec
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        return self._prefix

    def us(self, t_ns: int) -> str:
        """`2023-09-25T09:04:31.742648Z` (microseconds, as book/trade/ticker timestamps)."""
        if t_ns == self._last_ns:  # one event's frames share its timestamp
            return self._last_us
        sec, rem = divmod(t_ns, 1_000_000_000)
        text = f"{self._seconds(sec)}.{rem // 1000:06d}Z"
        self._last_ns, self._last_us = t_ns, text
        return text

    def ns(self, t_ns: int) -> str:
        """`2023-10-06T17:35:00.279389650Z` (nanoseconds, as level3/ohlc timestamps)."""
        sec, rem = divmod(t_ns, 1_000_000_000)
        return f"{self._seconds(sec)}.{rem:09d}Z"


_FMT = TimeFormatter()


def ts_us(t_ns: int) -> str:
    return _FMT.us(t_ns)


def ts_ns(t_ns: int) -> str:
    return _FMT.ns(t_ns)


def now_text() -> str:
    """Current wall time as microsecond RFC3339 (ack `time_in` / `time_out`)."""
    return _FMT.us(time.time_ns())
