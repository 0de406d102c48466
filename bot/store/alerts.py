"""Budget warnings already sent, so each goes out once per server, month and threshold, restarts included."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from bot.db import Database, to_db_time, utcnow


class AlertStore:
    def __init__(self, db: Database, *, clock: Callable[[], datetime] = utcnow) -> None:
        self._db = db
        self._clock = clock

    async def claim(self, guild_id: int, month: str, threshold: int) -> bool:
        """True for the one caller that gets to send this alert."""
        return bool(
            await self._db.execute(
                "INSERT INTO budget_alerts (guild_id, month, threshold, sent_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (guild_id, month, threshold, to_db_time(self._clock())),
            )
        )

    async def release(self, guild_id: int, month: str, threshold: int) -> None:
        """The alert could not be delivered: let the next check try again."""
        await self._db.execute(
            "DELETE FROM budget_alerts WHERE guild_id = ? AND month = ? AND threshold = ?",
            (guild_id, month, threshold),
        )
