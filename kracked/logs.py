"""Logging set-up shared by every command: one line per state change, never per message."""

from __future__ import annotations

import logging
import os
import sys


def setup_logging(level: str | None = None) -> None:
    """Configure the root logger once, from `level` or `KRACKED_LOG_LEVEL` (default INFO)."""
    name = (level or os.environ.get("KRACKED_LOG_LEVEL") or "INFO").upper()
    logging.basicConfig(
        level=getattr(logging, name, logging.INFO),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        force=True,
    )
