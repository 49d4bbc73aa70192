"""Shared test helpers: where the captured Kraken data lives (copied into tests/fixtures/)."""

from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures"
KRAKEN_CAPTURES = FIXTURES / "kraken"


@pytest.fixture
def kraken_captures() -> Path:
    """Folder of the real Kraken v2 captures (see tests/fixtures/kraken/README.md)."""
    return KRAKEN_CAPTURES
