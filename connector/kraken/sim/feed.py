"""What a data source (synthetic market or capture replay) must offer the sessions."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .session import Session, Sub


class Feed:
    """Base class: sessions validate requests, feeds send snapshots and stream updates."""

    def known_symbols(self) -> frozenset[str]:
        """Symbols a subscribe may name (others get `Currency pair not supported`)."""
        raise NotImplementedError

    def subscribe(self, session: Session, sub: Sub) -> None:
        """Register an accepted subscription; queue its snapshot first if it asked for one."""
        raise NotImplementedError

    def unsubscribe(self, session: Session, sub: Sub) -> None:
        raise NotImplementedError

    def session_closed(self, session: Session) -> None:
        raise NotImplementedError

    async def run(self) -> None:
        """Background work until cancelled (the market clock, or nothing)."""
        raise NotImplementedError
