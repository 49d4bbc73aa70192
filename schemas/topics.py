"""The topic catalog: the ONLY place topic names are written.

Every topic carries one Avro record type, kept in `schemas/avro/<topic>.avsc`. Names given here are
without `KRACKED_TOPIC_PREFIX`; `Topic.name_with(prefix)` adds it (replay writes into `backtest.` etc.).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path


class Topic(StrEnum):
    """Every topic kracked reads or writes (values are the unprefixed names)."""

    TICKER = "kraken.ticker"
    BOOK = "kraken.book"
    TRADE = "kraken.trade"
    OHLC = "kraken.ohlc"
    INSTRUMENT = "kraken.instrument"
    STATUS = "kraken.status"
    LEVEL3 = "kraken.level3"
    EXECUTIONS = "kraken.executions"
    BALANCES = "kraken.balances"
    CONTINUITY = "kracked.continuity"
    DEADLETTER = "kracked.deadletter"
    BOOK_TOP = "kracked.book.top"
    BARS = "kracked.bars"
    SPREAD = "kracked.spread"
    SIGNALS = "kracked.signals"
    ORDERS = "kracked.orders"

    def name_with(self, prefix: str = "") -> str:
        """The topic's name in Kafka under `prefix` (e.g. `backtest.` → `backtest.kraken.book`)."""
        return f"{prefix}{self.value}"

    @property
    def subject(self) -> str:
        """Schema-registry subject of the value (TopicNameStrategy, without prefix)."""
        return f"{self.value}-value"

    @property
    def schema_file(self) -> str:
        return f"{self.value}.avsc"

    @property
    def channel(self) -> str | None:
        """The Kraken v2 channel this topic carries, or None for kracked's own topics."""
        return self.value.split(".", 1)[1] if self.value.startswith("kraken.") else None


KRAKEN_CHANNEL_TOPICS: dict[str, Topic] = {t.channel: t for t in Topic if t.channel is not None}

# Compacted topics keep the latest record per key; everything else is time-retained.
COMPACTED: frozenset[Topic] = frozenset({Topic.INSTRUMENT, Topic.ORDERS})


def find_topic(name: str, prefix: str = "") -> Topic:
    """The Topic whose prefixed name is `name`; ValueError for an unknown topic."""
    bare = name[len(prefix) :] if prefix and name.startswith(prefix) else name
    try:
        return Topic(bare)
    except ValueError:
        known = ", ".join(t.value for t in Topic)
        raise ValueError(f"unknown topic {name!r} (known: {known})") from None


def schema_dir() -> Path:
    """Folder holding the `.avsc` files (inside the installed package)."""
    return Path(__file__).resolve().parent / "avro"
