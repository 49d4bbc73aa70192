"""Simulator settings: one frozen-ish dataclass for the market/server and one for fault injection.

Everything the simulator does is decided here, so a test builds a `SimConfig`, a CLI run builds the
same object from flags, and both get the same behaviour. Kraken constants that validation needs (book
depths, ohlc intervals, level3 depths: reference §2.2, §2.3, §3.5) live here too.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

# Kraken v2 accepted values (reference §2.2 book depth, §2.3 ohlc interval, §3.5 level3 depth).
BOOK_DEPTHS: tuple[int, ...] = (10, 25, 100, 500, 1000)
L3_DEPTHS: tuple[int, ...] = (10, 100, 1000)
OHLC_INTERVALS: tuple[int, ...] = (1, 5, 15, 30, 60, 240, 1440, 10080, 21600)

# URL paths served on the one WebSocket port (the real service uses three hosts, reference §1.1).
PUBLIC_PATH = "/v2"
AUTH_PATH = "/auth/v2"
L3_PATH = "/l3/v2"
TOKEN_PATH = "/0/private/GetWebSocketsToken"

# Well-known test credentials, so that a connector under test can sign REST calls without setup.
# Not secret: they only open this local simulator. Real keys come from KRACKED_KRAKEN_API_KEY/SECRET.
DEFAULT_API_KEY = "kracked-sim-key"
DEFAULT_API_SECRET = base64.b64encode(hashlib.sha512(b"kracked-sim-secret").digest()).decode("ascii")


@dataclass
class FaultConfig:
    """Fault injection: per-frame probabilities (seeded per connection) and deterministic every-N triggers.

    "Frames" here are data frames (channel messages other than status/heartbeat) written to one
    connection; every connection counts from zero. Tests can also fire one-off faults through the
    `Simulator` trigger methods.
    """

    drop_every: int = 0  # abort TCP (no close frame) after every N-th data frame
    drop_rate: float = 0.0
    stall_every: int = 0  # stop writing (heartbeats included) for stall_seconds after every N-th frame
    stall_rate: float = 0.0
    stall_seconds: float = 2.0
    malformed_every: int = 0  # insert one malformed frame after every N-th data frame
    malformed_rate: float = 0.0
    bad_checksum_every: int = 0  # every N-th book/level3 frame carries a wrong checksum
    bad_checksum_rate: float = 0.0
    trade_gap_every: int = 0  # every N-th trade frame is withheld (the client sees a trade_id gap)
    trade_gap_rate: float = 0.0
    reject_symbols: frozenset[str] = frozenset()  # subscriptions to these symbols get an error ack
    reject_error: str = "EService:Unavailable"

    @property
    def any_frame_fault(self) -> bool:
        return bool(
            self.drop_every
            or self.drop_rate
            or self.stall_every
            or self.stall_rate
            or self.malformed_every
            or self.malformed_rate
            or self.bad_checksum_every
            or self.bad_checksum_rate
            or self.trade_gap_every
            or self.trade_gap_rate
        )


@dataclass
class SimConfig:
    """Everything a `Simulator` needs; defaults give a deterministic 2-symbol market at 10 events/s."""

    host: str = "127.0.0.1"
    port: int = 0  # WebSocket port (0 = any free port); all three endpoints share it
    rest_port: int = 0  # REST token endpoint port (0 = any free port)
    symbols: tuple[str, ...] = ("BTC/USD", "ETH/USD")
    seed: int = 1
    # Market events per second per symbol; None = as fast as the clients read (benchmarks).
    # Every event is one trade plus one resting-order change, so book, trade, ticker(trades),
    # ohlc and level3 each get about `rate` frames per second per symbol.
    rate: float | None = 10.0
    replay: tuple[Path, ...] = ()  # non-empty = replay mode
    replay_loop: bool = False  # start a replayed stream again when it ends
    book_depth_default: int = 10  # depth used when a book subscribe has no `depth`
    book_levels: int = 1050  # price levels kept per side (must exceed the largest depth served)
    instruments_file: Path | None = None  # default: the packaged 683-pair snapshot
    heartbeat_interval: float = 1.0  # reference §1.7: about once a second once subscribed
    # Market clock: None = wall clock; else virtual time starting at start_time_ns and advancing
    # time_step_ns per market event (makes timestamps and ohlc intervals deterministic).
    start_time_ns: int | None = None
    time_step_ns: int = 1_000_000
    trade_snapshot_size: int = 50  # reference §2.4: the snapshot is the most recent 50 trades
    ohlc_snapshot_candles: int = 10
    max_trade_history: int = 1_000_000  # per symbol, kept for tests (compare what was delivered)
    account_trade_every: int = 10  # every N-th market trade of a symbol is the account's (executions)
    api_key: str = DEFAULT_API_KEY
    api_secret: str = field(default=DEFAULT_API_SECRET, repr=False)
    token_ttl: int = 900  # seconds (reference §3.1)
    system_status: str = "online"
    version: str = "2.0.10"
    max_queue: int = 20_000  # frames queued per connection before the market waits for it
    slow_client_timeout: float = 10.0  # a connection that reads nothing this long is dropped
    batch_frames: int = 256  # frames written per socket drain
    faults: FaultConfig = field(default_factory=FaultConfig)

    @property
    def replay_mode(self) -> bool:
        return bool(self.replay)

    def validate(self) -> None:
        """Raise ValueError with a one-line reason for a configuration that cannot work."""
        if self.book_depth_default not in BOOK_DEPTHS:
            raise ValueError(f"book depth {self.book_depth_default} not one of {BOOK_DEPTHS}")
        if self.rate is not None and self.rate <= 0:
            raise ValueError("rate must be > 0 (or None / 'max' for as fast as possible)")
        if self.book_levels <= max(BOOK_DEPTHS):
            raise ValueError(f"book_levels must exceed {max(BOOK_DEPTHS)} so every depth can refill")
        if not self.symbols and not self.replay:
            raise ValueError("no symbols to simulate")
        for sym in self.symbols:
            base, slash, quote = sym.partition("/")
            if not slash or not base or not quote:
                raise ValueError(f"symbol {sym!r} is not BASE/QUOTE")
        for path in self.replay:
            if not Path(path).is_file():
                raise ValueError(f"replay file not found: {path}")
        if self.instruments_file is not None and not Path(self.instruments_file).is_file():
            raise ValueError(f"instrument snapshot not found: {self.instruments_file}")
        if self.heartbeat_interval <= 0:
            raise ValueError("heartbeat_interval must be > 0")
