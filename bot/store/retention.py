"""Usage rows that go away: pruning old rows (USAGE_RETENTION_DAYS) and /usage forget. Either way their
tokens move into per-day aggregates (usage_daily), so the summaries, budgets and server totals stay right.
/usage forget leaves today's (UTC) rows: the daily quota and the cooldown are read from them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.db import Database, to_db_time, utcnow
from bot.status import Status
from bot.store.usage import same_guild, start_of_utc_day

log = logging.getLogger(__name__)

PRUNE_EVERY = 24 * 3600.0

# Rows still being streamed (or awaiting recovery) keep their row: the in-flight table points at it.
# Its one parameter: Status.STREAMING (pass _FINISHED_PARAMS after the query's own).
_FINISHED = "status <> ? AND request_id NOT IN (SELECT request_id FROM inflight)"
_FINISHED_PARAMS = (Status.STREAMING,)


@dataclass(frozen=True)
class Forgotten:
    deleted: int  # rows folded into nameless aggregates
    kept_today: int  # today's (UTC) rows, left for the daily quota and the cooldown


def _aggregate(user: str, where: str) -> str:
    return (
        "INSERT INTO usage_daily (day, guild_id, channel_id, user_id, model, status, requests,"
        " prompt_tokens, completion_tokens, reasoning_tokens, estimated_requests)"
        f" SELECT substr(started_at, 1, 10), guild_id, channel_id, {user}, model, status, COUNT(*),"
        " SUM(prompt_tokens), SUM(completion_tokens), SUM(reasoning_tokens), SUM(estimated)"
        f" FROM usage WHERE {where} AND {_FINISHED}"
        " GROUP BY substr(started_at, 1, 10), guild_id, channel_id, user_id, model, status"
    )


class UsageRetention:
    def __init__(self, db: Database, *, clock: Callable[[], datetime] = utcnow) -> None:
        self._db = db
        self._clock = clock

    async def prune(self, keep_days: int) -> int:
        """Fold the request rows of whole UTC days older than ``keep_days`` into per-day aggregates (per
        user, channel, model and outcome); returns how many rows went."""
        before = to_db_time(start_of_utc_day(self._clock()) - timedelta(days=keep_days))
        async with self._db.transaction():
            await self._db.execute(_aggregate("user_id", "started_at < ?"), (before, *_FINISHED_PARAMS))
            pruned = await self._db.execute(
                f"DELETE FROM usage WHERE started_at < ? AND {_FINISHED}", (before, *_FINISHED_PARAMS)
            )
        if pruned:
            log.info("Pruned %d usage rows older than %d days into daily totals", pruned, keep_days)
        return pruned

    async def prune_daily(self, keep_days: int) -> None:
        """Prune now and then once a day, until cancelled; a failed run is logged and tried the next day."""
        while True:
            try:
                await self.prune(keep_days)
            except Exception:
                log.exception("Pruning usage rows failed")
            await asyncio.sleep(PRUNE_EVERY)

    async def forget(self, guild_id: int | None, user_id: int) -> Forgotten:
        """Delete a user's usage rows in one server (or in direct messages) from before today (UTC); their
        tokens stay in the server's totals as per-day aggregates that name nobody. Today's rows stay: the
        daily quota and the cooldown count them, and forgetting must not reset either."""
        guild, guild_params = same_guild(guild_id)
        today = to_db_time(start_of_utc_day(self._clock()))
        mine = f"{guild} AND user_id = ?"
        params = (*guild_params, user_id)
        before_today = f"{mine} AND started_at < ?"
        old = (*params, today, *_FINISHED_PARAMS)
        async with self._db.transaction():
            await self._db.execute(_aggregate("NULL", before_today), old)
            deleted = await self._db.execute(f"DELETE FROM usage WHERE {before_today} AND {_FINISHED}", old)
            await self._db.execute(f"UPDATE usage_daily SET user_id = NULL WHERE {mine}", params)
            row = await self._db.fetchone(f"SELECT COUNT(*) AS n FROM usage WHERE {mine}", params)
        kept = int(row["n"]) if row else 0
        log.info(
            "User %s forgot %d usage rows in server %s, kept %d of today's", user_id, deleted, guild_id, kept
        )
        return Forgotten(deleted, kept)
