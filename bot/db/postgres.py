"""The PostgreSQL backend: an asyncpg pool shared by several bot processes.

Statements keep the stores' ``?`` placeholders (translated once, in ``bot.db.placeholders``). What processes
share beyond rows goes through session-level advisory locks: one while migrations run, and one per process
on its instance id, held for the process's life on a connection of its own, so other processes can tell a
live owner's in-flight rows from a dead one's.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg

from bot.db.base import DatabaseUnavailable
from bot.db.location import describe_url
from bot.db.migrations import (
    MIGRATIONS_ROOT,
    SELECT_APPLIED,
    MigrationFile,
    MigrationStatus,
    Params,
    Row,
    apply_migrations,
    read_migration_status,
)
from bot.db.placeholders import to_numbered

log = logging.getLogger(__name__)

MIGRATIONS_DIR = MIGRATIONS_ROOT / "postgres"
CONNECT_TIMEOUT = 10.0
COMMAND_TIMEOUT = 60.0
POOL_SIZE = 10
RELOCK_MAX_DELAY = 30.0
# Failures that mean "the server is away", as opposed to a wrong statement.
_UNAVAILABLE = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,  # admin shutdown, crash recovery, "cannot connect now"
    asyncpg.TooManyConnectionsError,
)


def advisory_key(*parts: object) -> int:
    """A bigint advisory-lock key for a named thing, e.g. ``advisory_key("instance", id)``."""
    name = ":".join(("streamcord", *map(str, parts))).encode()
    return int.from_bytes(hashlib.blake2b(name, digest_size=8).digest(), "big", signed=True)


MIGRATIONS_LOCK = advisory_key("migrations")


@contextlib.contextmanager
def unavailable_as(label: str) -> Iterator[None]:
    """Turn connection-level failures into DatabaseUnavailable naming the database."""
    try:
        yield
    except _UNAVAILABLE as exc:
        raise DatabaseUnavailable(
            f"PostgreSQL at {label} is unavailable: {exc or type(exc).__name__}"
        ) from exc


class PostgresDatabase:
    """A pool of asyncpg connections; create with ``await PostgresDatabase.open(url)``."""

    def __init__(self, pool: asyncpg.Pool, url: str, migrations_dir: Path) -> None:
        self._pool = pool
        self._url = url
        self.migrations_dir = migrations_dir
        self.instance_id = uuid.uuid4().hex
        self.newly_applied: list[MigrationFile] = []
        # A task inside a transaction (or running migrations) uses one connection for all its statements.
        self._pinned: dict[asyncio.Task[Any] | None, asyncpg.Connection] = {}
        self._instance_conn: asyncpg.Connection | None = None
        self._relock: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def label(self) -> str:
        return describe_url(self._url)

    @property
    def pool(self) -> asyncpg.Pool:
        """For services that need a connection of their own for a while (e.g. the identify gate)."""
        return self._pool

    @classmethod
    async def open(cls, url: str, migrations_dir: Path = MIGRATIONS_DIR) -> PostgresDatabase:
        """Connect, take this process's instance lock, and bring the schema up to date."""
        with unavailable_as(describe_url(url)):
            pool = await asyncpg.create_pool(
                url, min_size=1, max_size=POOL_SIZE, timeout=CONNECT_TIMEOUT, command_timeout=COMMAND_TIMEOUT
            )
        db = cls(pool, url, migrations_dir)
        try:
            if not await db._take_instance_lock():
                # A fresh id has no rows yet, so no other process has reason to probe its lock.
                raise RuntimeError(f"instance lock {db.instance_id} is already held")
            async with db._connection() as conn:
                db._pinned[asyncio.current_task()] = conn
                try:
                    # Processes starting together: the first migrates, the others wait and find nothing to do.
                    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATIONS_LOCK)
                    try:
                        db.newly_applied = await apply_migrations(db)
                    finally:
                        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATIONS_LOCK)
                finally:
                    del db._pinned[asyncio.current_task()]
        except BaseException:
            await db.close()
            raise
        return db

    async def close(self) -> None:
        self._closing = True
        if self._relock is not None:
            self._relock.cancel()
        if self._instance_conn is not None:
            await self._instance_conn.close()
        await self._pool.close()

    # --- statements -------------------------------------------------------------------------------------

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        with unavailable_as(self.label):
            pinned = self._pinned.get(asyncio.current_task())
            if pinned is not None:
                yield pinned
                return
            async with self._pool.acquire() as conn:
                yield conn

    async def execute(self, sql: str, params: Params = ()) -> int:
        async with self._connection() as conn:
            status = await conn.execute(to_numbered(sql), *_positional(params))
        # "UPDATE 3", "INSERT 0 1", "CREATE TABLE": the count, when there is one, comes last.
        last = status.rsplit(" ", 1)[-1]
        return int(last) if last.isdigit() else 0

    async def execute_many(self, sql: str, rows: Sequence[Params]) -> None:
        async with self._connection() as conn:
            await conn.executemany(to_numbered(sql), [_positional(params) for params in rows])

    async def fetchone(self, sql: str, params: Params = ()) -> asyncpg.Record | None:
        async with self._connection() as conn:
            return await conn.fetchrow(to_numbered(sql), *_positional(params))

    async def fetchall(self, sql: str, params: Params = ()) -> list[asyncpg.Record]:
        async with self._connection() as conn:
            return list(await conn.fetch(to_numbered(sql), *_positional(params)))

    def transaction(self) -> AbstractAsyncContextManager[None]:
        return self._transaction()

    def snapshot(self) -> AbstractAsyncContextManager[None]:
        return self._transaction(isolation="repeatable_read", readonly=True)

    @asynccontextmanager
    async def _transaction(self, **options: Any) -> AsyncIterator[None]:
        task = asyncio.current_task()
        async with self._connection() as conn:
            outermost = task not in self._pinned
            self._pinned[task] = conn
            try:
                # asyncpg makes a nested transaction a savepoint (options apply to the outermost only).
                async with conn.transaction(**(options if outermost else {})):
                    yield
            finally:
                if outermost:
                    del self._pinned[task]

    # --- which processes are alive ----------------------------------------------------------------------

    async def instance_alive(self, instance_id: str) -> bool:
        if instance_id == self.instance_id:
            return True
        key = advisory_key("instance", instance_id)
        # Free means its process is gone: we got it, so give it straight back (same statement, same session).
        row = await self.fetchone(
            "SELECT CASE WHEN pg_try_advisory_lock(?) THEN NOT pg_advisory_unlock(?) ELSE TRUE END AS alive",
            (key, key),
        )
        return bool(row and row["alive"])

    async def _take_instance_lock(self) -> bool:
        """Hold this process's instance lock on a connection of its own; False while it is busy (another
        process's instance_alive() holds it for the length of one statement)."""
        with unavailable_as(self.label):
            # Not from the pool: a pooled connection drops its advisory locks when released.
            conn = await asyncpg.connect(self._url, timeout=CONNECT_TIMEOUT)
            try:
                taken = await conn.fetchval(
                    "SELECT pg_try_advisory_lock($1)", advisory_key("instance", self.instance_id)
                )
            except BaseException:
                await conn.close()
                raise
        if not taken:
            await conn.close()
            return False
        conn.add_termination_listener(self._instance_lock_lost)
        self._instance_conn = conn
        return True

    def _instance_lock_lost(self, conn: asyncpg.Connection) -> None:
        if self._closing:
            return
        log.warning("Lost the PostgreSQL session holding this process's instance lock; taking it again")
        self._relock = asyncio.get_running_loop().create_task(self._hold_instance_lock())

    async def _hold_instance_lock(self) -> None:
        """Take the instance lock, retrying while the database is away (e.g. restarting)."""
        delay = 0.1
        while True:
            try:
                if await self._take_instance_lock():
                    log.info("Holding the instance lock on %s", self.label)
                    return
            except DatabaseUnavailable as exc:
                log.info("Instance lock not taken yet (%s); retrying in %.1f s", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RELOCK_MAX_DELAY)


def _positional(params: Params) -> Sequence[Any]:
    if isinstance(params, dict):
        raise TypeError("named parameters are SQLite-only; the stores use ? placeholders")
    return params


async def migration_status(url: str, migrations_dir: Path = MIGRATIONS_DIR) -> MigrationStatus:
    """Compare a database with the migration files without creating or changing anything."""

    async def applied_rows() -> Sequence[Row]:
        with unavailable_as(describe_url(url)):
            conn = await asyncpg.connect(url, timeout=CONNECT_TIMEOUT)
            try:
                exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
                return await conn.fetch(SELECT_APPLIED) if exists else []
            finally:
                await conn.close()

    return await read_migration_status(migrations_dir, applied_rows)
