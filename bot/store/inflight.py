"""Replies being streamed right now, so a restart can find and close the ones a crash left half-written."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from bot.db import Database, from_db_time, to_db_time, utcnow
from bot.shards import GuildFilter, every_guild
from bot.status import Status
from bot.store.usage import AnswerStart
from bot.store.write_queue import WriteQueue


@dataclass(frozen=True)
class InflightReply:
    request_id: str
    guild_id: int | None
    channel_id: int
    user_id: int
    message_ids: list[int]  # the reply's Discord messages so far, in order
    started_at: datetime


class InflightStore:
    """Rows are tagged with ``db.instance_id``, so orphans() never returns a live process's replies.

    Updates and removals queue while the database is away: a finished reply must not be "recovered"."""

    def __init__(self, db: Database, *, clock: Callable[[], datetime] = utcnow) -> None:
        self._db = db
        self._clock = clock
        self.writes = WriteQueue(db)

    async def add(self, answers: Sequence[AnswerStart]) -> None:
        """Track replies; their usage rows must exist already (UsageStore.start)."""
        at, owner = to_db_time(self._clock()), self._db.instance_id
        await self._db.execute_many(
            "INSERT INTO inflight (request_id, guild_id, channel_id, user_id, message_ids, started_at, owner)"
            " VALUES (?, ?, ?, ?, '[]', ?, ?)",
            [(a.request_id, a.guild_id, a.channel_id, a.user_id, at, owner) for a in answers],
        )

    async def set_messages(self, request_id: str, message_ids: list[int]) -> None:
        await self.writes.write(
            "UPDATE inflight SET message_ids = ? WHERE request_id = ?", (json.dumps(message_ids), request_id)
        )

    async def remove(self, request_id: str) -> None:
        await self.writes.write("DELETE FROM inflight WHERE request_id = ?", (request_id,))

    async def orphans(self, belongs: GuildFilter = every_guild) -> list[InflightReply]:
        """Replies whose process is gone (crash or kill), in the servers ``belongs`` picks, oldest first.

        Other live processes' replies are theirs (PostgreSQL: their instance lock is held)."""
        rows = await self._db.fetchall(
            "SELECT request_id, guild_id, channel_id, user_id, message_ids, started_at, owner FROM inflight"
            " WHERE owner != ? ORDER BY started_at, request_id",
            (self._db.instance_id,),
        )
        alive = {owner: await self._db.instance_alive(owner) for owner in {row["owner"] for row in rows}}
        return [
            InflightReply(
                request_id=row["request_id"],
                guild_id=row["guild_id"],
                channel_id=row["channel_id"],
                user_id=row["user_id"],
                message_ids=[int(m) for m in json.loads(row["message_ids"])],
                started_at=from_db_time(row["started_at"]),
            )
            for row in rows
            if not alive[row["owner"]] and belongs(row["guild_id"])
        ]

    async def close_orphan(
        self, request_id: str, *, prompt_tokens: int | None = None, completion_tokens: int | None = None
    ) -> None:
        """Mark an unfinished usage row interrupted (token counts estimated; pass estimates if you have
        them) and forget the in-flight row, atomically. A usage row that did finish is left as it is."""
        async with self._db.transaction():
            await self._db.execute(
                "UPDATE usage SET status = ?, estimated = 1, finished_at = ?,"
                " prompt_tokens = COALESCE(?, prompt_tokens),"
                " completion_tokens = COALESCE(?, completion_tokens)"
                " WHERE request_id = ? AND status = ?",
                (
                    Status.INTERRUPTED,
                    to_db_time(self._clock()),
                    prompt_tokens,
                    completion_tokens,
                    request_id,
                    Status.STREAMING,
                ),
            )
            await self._db.execute("DELETE FROM inflight WHERE request_id = ?", (request_id,))
