"""`kracked sim`: a local Kraken WebSocket v2 + REST token simulator for tests, benchmarks and demos.

Synthetic mode generates a deterministic market (seeded) with correct book/level3 checksums, trades,
ticker, ohlc, executions and balances; replay mode sends captured frames unchanged. Fault injection
(drops, stalls, malformed frames, wrong checksums, trade-id gaps, rejected subscriptions) is
configurable by rate or triggered from tests. See server.py for the endpoints and the CLI.
"""

from .config import DEFAULT_API_KEY, DEFAULT_API_SECRET, FaultConfig, SimConfig
from .rest import sign
from .server import SimStats, SimThread, Simulator, main

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_API_SECRET",
    "FaultConfig",
    "SimConfig",
    "SimStats",
    "SimThread",
    "Simulator",
    "main",
    "sign",
]
