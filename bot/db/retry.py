"""Bounded retries of a database write that must not be lost to a passing lock or a moment of full disk."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Awaitable, Callable

from bot.db.base import DatabaseUnavailable

log = logging.getLogger(__name__)

ATTEMPTS = 4
BACKOFF = 0.5  # seconds, doubled after each failure
# A lock held past the busy timeout, a full disk, an I/O error, the database server away (PostgreSQL), a
# bounded wait: any may pass, and a write that fails for good fails the same way each time, so bounded
# retries cost little.
FAILURES = (sqlite3.Error, DatabaseUnavailable, TimeoutError)


async def retried(write: Callable[[], Awaitable[None]], what: str, *, attempts: int = ATTEMPTS) -> bool:
    """Run ``write`` until it succeeds, at most ``attempts`` times; whether it did. Logs each failure."""
    for attempt in range(1, attempts + 1):
        try:
            await write()
        except FAILURES as exc:
            log.warning("Database write failed (%s), try %d of %d: %r", what, attempt, attempts, exc)
            if attempt < attempts:
                await asyncio.sleep(BACKOFF * 2 ** (attempt - 1))
        else:
            return True
    log.error("Database write given up (%s) after %d tries", what, attempts)
    return False
