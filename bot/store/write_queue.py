"""Writes that must outlive a database outage (usage rows): kept in order, bounded, retried."""

from __future__ import annotations

import asyncio
import collections
import logging

from bot.db import Database, DatabaseUnavailable
from bot.db.migrations import Params

log = logging.getLogger(__name__)

QUEUE_LIMIT = 10_000
FIRST_RETRY_DELAY = 0.5
MAX_RETRY_DELAY = 30.0


class WriteQueue:
    """``write()`` runs a statement now, or, while the database is away, queues it (oldest dropped past
    the limit) and replays the queue in order once it answers again."""

    def __init__(self, db: Database, *, limit: int = QUEUE_LIMIT) -> None:
        self._db = db
        self._pending: collections.deque[tuple[str, Params]] = collections.deque()
        self._limit = limit
        self._dropped = 0
        self._flusher: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def write(self, sql: str, params: Params = ()) -> int | None:
        """Rows changed, or None when the write was queued for later."""
        if not self._pending:  # queued writes go first: a finish must never land before its start
            try:
                return await self._db.execute(sql, params)
            except DatabaseUnavailable as exc:
                log.warning("Database unavailable, queueing writes until it is back: %s", exc)
        if len(self._pending) >= self._limit:
            self._pending.popleft()
            self._dropped += 1
            log.error(
                "Write queue full (%d): dropped the oldest queued write (%d so far)",
                self._limit,
                self._dropped,
            )
        self._pending.append((sql, params))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="write-queue-flush")
        return None

    async def _flush(self) -> None:
        delay = FIRST_RETRY_DELAY
        while self._pending:
            sql, params = self._pending[0]
            try:
                await self._db.execute(sql, params)
            except DatabaseUnavailable:
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_RETRY_DELAY)
                continue
            except Exception:  # a statement the database refuses will never succeed: drop it, keep the rest
                log.exception("Dropped a queued write the database refused")
            self._pending.popleft()
            delay = FIRST_RETRY_DELAY
        log.info("Database back: queued writes replayed")

    async def close(self) -> None:
        """Stop retrying; queued writes that never landed are reported, not silently lost."""
        if self._flusher is not None:
            self._flusher.cancel()
        if self._pending:
            log.error(
                "%d queued database writes were lost at shutdown (database unavailable)", len(self._pending)
            )
