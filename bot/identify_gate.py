"""Discord allows one IDENTIFY per 5 s per bucket (``shard_id % max_concurrency``); this spaces them out.

On PostgreSQL the gate holds across processes and machines: an advisory lock per bucket lets one shard at a
time through, and the bucket's last identify time is kept and compared on the database server's clock. On
SQLite (one process) an in-process gate does the same.

Call ``await gate.wait_turn(bucket)`` right before sending IDENTIFY (discord.py: ``before_identify_hook``);
the interval counts from the moment the previous ``wait_turn`` returned, so leave a margin for the time
between that and the IDENTIFY reaching Discord.
"""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING, Protocol

from bot.db.base import Database

if TYPE_CHECKING:
    from bot.db.postgres import PostgresDatabase

IDENTIFY_INTERVAL = 5.0


class IdentifyGate(Protocol):
    async def wait_turn(self, bucket: int, interval: float = IDENTIFY_INTERVAL) -> None:
        """Return when this process may IDENTIFY in ``bucket``; records that it did."""
        ...


def identify_gate(db: Database) -> IdentifyGate:
    """The gate that holds as far as ``db`` is shared."""
    # Loaded only when DATABASE_URL chose PostgreSQL: without it, db can't be one (and asyncpg stays out).
    postgres = sys.modules.get("bot.db.postgres")
    if postgres is not None and isinstance(db, postgres.PostgresDatabase):
        return PostgresIdentifyGate(db)
    return LocalIdentifyGate()


class LocalIdentifyGate:
    """One process: a lock and a monotonic timestamp per bucket."""

    def __init__(self) -> None:
        self._locks: dict[int, asyncio.Lock] = {}
        self._last: dict[int, float] = {}

    async def wait_turn(self, bucket: int, interval: float = IDENTIFY_INTERVAL) -> None:
        loop = asyncio.get_running_loop()
        async with self._locks.setdefault(bucket, asyncio.Lock()):
            last = self._last.get(bucket)
            if last is not None:
                await asyncio.sleep(max(0.0, last + interval - loop.time()))
            self._last[bucket] = loop.time()


class PostgresIdentifyGate:
    """Every process sharing the database: one shard per bucket at a time, timed by the server's clock."""

    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def wait_turn(self, bucket: int, interval: float = IDENTIFY_INTERVAL) -> None:
        from bot.db.postgres import advisory_key, unavailable_as

        key = advisory_key("identify", bucket)
        with unavailable_as(self._db.label):
            # A connection of its own for the whole turn: the session lock lives on it.
            async with self._db.pool.acquire() as conn:
                await conn.execute("SELECT pg_advisory_lock($1)", key)
                try:
                    wait = await conn.fetchval(
                        "SELECT EXTRACT(EPOCH FROM last_at + make_interval(secs => $2) - clock_timestamp())"
                        " FROM identify_gate WHERE bucket = $1",
                        bucket,
                        interval,
                    )
                    if wait is not None and wait > 0:
                        await asyncio.sleep(float(wait))
                    await conn.execute(
                        "INSERT INTO identify_gate (bucket, last_at) VALUES ($1, clock_timestamp())"
                        " ON CONFLICT (bucket) DO UPDATE SET last_at = excluded.last_at",
                        bucket,
                    )
                finally:
                    await conn.execute("SELECT pg_advisory_unlock($1)", key)
