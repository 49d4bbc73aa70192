"""Fault injection on one connection's outgoing frames: drop, stall, malformed, bad checksum, trade gap.

Faults act where a network or exchange fault would be seen, on the way out to one client; the market
itself is never altered (a corrupted checksum leaves the simulator's true book intact, so only a
resubscribe recovers, reference §4.7). Each connection has its own seeded RNG and counters, so a run
is reproducible; tests can also arm one-off faults (`arm_*`), which fire on the next eligible frame.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

from .config import FaultConfig

# Malformed frames, in rotation: invalid JSON first, then valid JSON of a shape no channel has.
MALFORMED: tuple[tuple[str, bytes], ...] = (
    ("invalid_json", b'{"channel":"book","type":"update","data":[{"symbol":'),
    ("unknown_shape", b'{"channel":"kracked_sim_unknown","type":"update","data":[{"x":1}]}'),
    ("invalid_json", b"not json at all"),
    ("unknown_shape", b'{"channel":"book","type":"update","data":{"unexpected":true}}'),
    ("unknown_shape", b"[1,2,3]"),
)
MALFORMED_BY_KIND: dict[str, bytes] = {"invalid_json": MALFORMED[0][1], "unknown_shape": MALFORMED[1][1]}

_CHECKSUM = re.compile(rb'"checksum":\s*(\d+)')


def corrupt_checksum(data: bytes) -> bytes:
    """The same frame with its (last) checksum changed to a different valid u32."""
    matches = list(_CHECKSUM.finditer(data))
    if not matches:
        return data
    m = matches[-1]
    wrong = (int(m.group(1)) + 0x9E3779B9) & 0xFFFFFFFF
    return data[: m.start(1)] + str(wrong).encode() + data[m.end(1) :]


@dataclass
class Verdict:
    """What to do with one data frame."""

    data: bytes | None  # None = withhold the frame
    fault: str | None = None  # counted fault kind, if any
    drop_after: bool = False
    stall_after: float = 0.0
    extra: list[tuple[str, bytes]] = field(default_factory=list)  # malformed frames to send after it


class FaultState:
    """Per-connection fault counters, RNG and armed one-off faults."""

    def __init__(self, config: FaultConfig, rng: random.Random) -> None:
        self.config = config
        self.rng = rng
        self.data_frames = 0
        self.book_frames = 0
        self.trade_frames = 0
        self._malformed_next = 0
        self.armed_bad_checksum: list[str | None] = []  # symbol or None (any)
        self.armed_trade_gap: list[str | None] = []

    @property
    def active(self) -> bool:
        return self.config.any_frame_fault or bool(self.armed_bad_checksum or self.armed_trade_gap)

    def _hit(self, every: int, count: int, rate: float) -> bool:
        return bool((every and count % every == 0) or (rate and self.rng.random() < rate))

    @staticmethod
    def _take_armed(armed: list[str | None], symbol: str | None) -> bool:
        for i, want in enumerate(armed):
            if want is None or want == symbol:
                del armed[i]
                return True
        return False

    def next_malformed(self) -> tuple[str, bytes]:
        kind = MALFORMED[self._malformed_next % len(MALFORMED)]
        self._malformed_next += 1
        return kind

    def on_data_frame(
        self, data: bytes, channel: str, symbol: str | None, checksum: bool, trade: bool
    ) -> Verdict:
        cfg = self.config
        if trade:
            self.trade_frames += 1
            if self._take_armed(self.armed_trade_gap, symbol) or self._hit(
                cfg.trade_gap_every, self.trade_frames, cfg.trade_gap_rate
            ):
                return Verdict(None, fault="trade_gap")
        verdict = Verdict(data)
        if checksum:
            self.book_frames += 1
            if self._take_armed(self.armed_bad_checksum, symbol) or self._hit(
                cfg.bad_checksum_every, self.book_frames, cfg.bad_checksum_rate
            ):
                verdict.data = corrupt_checksum(data)
                verdict.fault = "bad_checksum"
        self.data_frames += 1
        n = self.data_frames
        if self._hit(cfg.malformed_every, n, cfg.malformed_rate):
            verdict.extra.append(self.next_malformed())
        if self._hit(cfg.stall_every, n, cfg.stall_rate):
            verdict.stall_after = cfg.stall_seconds
        if self._hit(cfg.drop_every, n, cfg.drop_rate):
            verdict.drop_after = True
        return verdict
