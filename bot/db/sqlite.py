"""The SQLite backend: one aiosqlite connection, serialized statements, transactions and savepoints.

Every statement goes through one asyncio.Lock, so a single statement from one task can never land inside
another task's open transaction (they share the connection).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from bot.db.base import DatabaseUnavailable
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

log = logging.getLogger(__name__)

MIGRATIONS_DIR = MIGRATIONS_ROOT / "sqlite"
# How long a statement waits for another connection's write lock before failing with "database is locked".
BUSY_TIMEOUT = 5.0


class SqliteDatabase:
    """One aiosqlite connection shared by the whole bot; create with ``await SqliteDatabase.open(path)``.

    A single process owns the file: every other process's rows are a dead run's leftovers."""

    def __init__(self, conn: aiosqlite.Connection, path: Path, migrations_dir: Path) -> None:
        self._conn = conn
        self.path = path
        self.migrations_dir = migrations_dir
        # Identifies this process's rows (e.g. in-flight replies) apart from a previous run's leftovers.
        self.instance_id = uuid.uuid4().hex
        self.newly_applied: list[MigrationFile] = []
        self._lock = asyncio.Lock()
        self._owner: asyncio.Task[Any] | None = None
        self._savepoints = 0

    @property
    def label(self) -> str:
        return str(self.path)

    @classmethod
    async def open(
        cls, path: str | Path, migrations_dir: Path = MIGRATIONS_DIR, *, busy_timeout: float = BUSY_TIMEOUT
    ) -> SqliteDatabase:
        """Open (creating it if needed) and bring the schema up to date."""
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: no implicit transactions from the sqlite3 module; we issue BEGIN.
            db = await cls._connect(path, migrations_dir, path, busy_timeout, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise DatabaseUnavailable(f"cannot open the SQLite database {path}: {exc}") from exc
        try:
            row = await db.fetchone("PRAGMA journal_mode = WAL")
            if row is None or str(row[0]).lower() != "wal":
                log.warning("could not enable WAL on %s (journal_mode=%s)", path, row and row[0])
            await db.execute("PRAGMA synchronous = NORMAL")
            await db.execute("PRAGMA foreign_keys = ON")
        except sqlite3.Error as exc:  # not an SQLite file, or one it can't write
            await db.close()
            raise DatabaseUnavailable(f"cannot use the SQLite database {path}: {exc}") from exc
        except BaseException:
            await db.close()
            raise
        try:
            db.newly_applied = await apply_migrations(db)
        except BaseException:
            await db.close()
            raise
        return db

    @classmethod
    async def _connect(
        cls, path: Path, migrations_dir: Path, target: str | Path, busy_timeout: float, **options: Any
    ) -> SqliteDatabase:
        conn = await aiosqlite.connect(target, **options)
        try:
            conn.row_factory = sqlite3.Row
            await conn.execute(f"PRAGMA busy_timeout = {round(busy_timeout * 1000)}")
        except BaseException:
            await conn.close()
            raise
        return cls(conn, path, migrations_dir)

    async def close(self) -> None:
        async with self._lock:
            await self._conn.close()

    async def instance_alive(self, instance_id: str) -> bool:
        return instance_id == self.instance_id

    def snapshot(self) -> AbstractAsyncContextManager[None]:
        # A transaction holds SQLite's write lock: nothing changes between its reads.
        return self.transaction()

    # --- statements -------------------------------------------------------------------------------------

    @asynccontextmanager
    async def _serialized(self) -> AsyncIterator[None]:
        task = asyncio.current_task()
        if task is not None and self._owner is task:
            yield  # already inside this task's transaction
            return
        async with self._lock:
            yield

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; returns the number of rows changed."""
        async with self._serialized(), self._conn.execute(sql, params) as cursor:
            return cursor.rowcount

    async def execute_many(self, sql: str, rows: Sequence[Params]) -> None:
        async with self._serialized():
            await self._conn.executemany(sql, rows)

    async def fetchone(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        async with self._serialized(), self._conn.execute(sql, params) as cursor:
            return await cursor.fetchone()

    async def fetchall(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        async with self._serialized(), self._conn.execute(sql, params) as cursor:
            return list(await cursor.fetchall())

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """``async with db.transaction():`` commits on success, rolls back on any exception.

        Nested use in the same task becomes a SAVEPOINT. Don't await other tasks that use the database from
        inside a transaction: they wait for the lock this task holds. BEGIN IMMEDIATE takes SQLite's write
        lock at once, which keeps other processes out until COMMIT.
        """
        task = asyncio.current_task()
        if task is not None and self._owner is task:
            async with self._savepoint():
                yield
            return
        async with self._lock:
            self._owner = task
            try:
                # A cancelled await still runs its statement on aiosqlite's FIFO thread, so after any failure
                # (even cancellation during BEGIN or COMMIT) the queued ROLLBACK lands after it.
                try:
                    await self._conn.execute("BEGIN IMMEDIATE")
                    yield
                    await self._conn.execute("COMMIT")
                except BaseException:
                    await self._rollback()
                    raise
            finally:
                self._owner = None

    @asynccontextmanager
    async def _savepoint(self) -> AsyncIterator[None]:
        self._savepoints += 1
        name = f"sp{self._savepoints}"
        await self._conn.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            await self._conn.execute(f"ROLLBACK TO {name}")
            await self._conn.execute(f"RELEASE {name}")
            raise
        else:
            await self._conn.execute(f"RELEASE {name}")
        finally:
            self._savepoints -= 1

    async def _rollback(self) -> None:
        # The transaction may already be gone (failed BEGIN, COMMIT that ran, SQLITE_FULL); that is fine.
        try:
            await self._conn.execute("ROLLBACK")
        except sqlite3.OperationalError as exc:
            log.debug("rollback skipped: %s", exc)


async def migration_status(path: str | Path, migrations_dir: Path = MIGRATIONS_DIR) -> MigrationStatus:
    """Compare a database with the migration files without creating or changing anything."""
    path = Path(path)

    async def applied_rows() -> Sequence[Row]:
        if not path.exists():
            return []
        uri = f"{path.resolve().as_uri()}?mode=ro"
        db = await SqliteDatabase._connect(path, migrations_dir, uri, BUSY_TIMEOUT, uri=True)
        try:
            exists = await db.fetchone(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
            )
            return await db.fetchall(SELECT_APPLIED) if exists else []
        finally:
            await db.close()

    return await read_migration_status(migrations_dir, applied_rows)
