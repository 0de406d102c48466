"""SQLite access: one aiosqlite connection, serialized writes, versioned migrations.

Every statement goes through one asyncio.Lock, so a single statement from one task can never land inside
another task's open transaction (they share the connection). Times are stored as fixed-width ISO-8601 UTC
text ("2025-01-31T12:00:00.000000Z"), which sorts and compares correctly as plain text.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import sqlite3
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import aiosqlite

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
_MIGRATION_NAME = re.compile(r"^(\d{4})_([A-Za-z0-9_]+)\.sql$")
_TRANSACTION_KEYWORDS = ("BEGIN", "COMMIT", "END", "ROLLBACK", "SAVEPOINT", "RELEASE")
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"

Params = Sequence[Any] | dict[str, Any]


def utcnow() -> datetime:
    return datetime.now(UTC)


def to_db_time(dt: datetime) -> str:
    """Aware datetime -> stored text; naive datetimes are taken to be UTC."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).strftime(_TIME_FORMAT)


def from_db_time(text: str) -> datetime:
    return datetime.strptime(text, _TIME_FORMAT).replace(tzinfo=UTC)


class MigrationError(RuntimeError):
    """The database and the migration files disagree; the message says what to do."""


@dataclass(frozen=True)
class MigrationFile:
    version: int
    name: str
    path: Path
    checksum: str

    @property
    def filename(self) -> str:
        return self.path.name


@dataclass(frozen=True)
class AppliedMigration:
    version: int
    name: str
    checksum: str
    applied_at: str


@dataclass(frozen=True)
class MigrationStatus:
    applied: list[AppliedMigration]
    pending: list[MigrationFile]
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def load_migrations(migrations_dir: Path) -> list[MigrationFile]:
    """The migration files in version order; malformed names and duplicate versions are errors."""
    if not migrations_dir.is_dir():
        raise MigrationError(f"migrations directory {migrations_dir} not found; run from a complete checkout")
    files: dict[int, MigrationFile] = {}
    for path in sorted(migrations_dir.glob("*.sql")):
        match = _MIGRATION_NAME.match(path.name)
        if match is None:
            raise MigrationError(
                f"{path}: migration files must be named NNNN_name.sql (e.g. 0002_add_index.sql); rename it"
            )
        version = int(match.group(1))
        if version in files:
            raise MigrationError(
                f"{path.name} and {files[version].filename} share version {version:04d}; renumber one of them"
            )
        checksum = hashlib.sha256(path.read_bytes()).hexdigest()
        files[version] = MigrationFile(version, match.group(2), path, checksum)
    return [files[v] for v in sorted(files)]


def _compare(applied: list[AppliedMigration], files: list[MigrationFile]) -> MigrationStatus:
    by_version = {f.version: f for f in files}
    problems: list[str] = []
    for row in applied:
        file = by_version.get(row.version)
        label = f"{row.version:04d}_{row.name}.sql"
        if file is None:
            problems.append(
                f"database is newer than this code: migration {label} is applied but missing from the "
                "migrations directory; run the matching Streamcord version or restore the database from a "
                "backup"
            )
        elif file.checksum != row.checksum or file.name != row.name:
            problems.append(
                f"migration {file.filename} was changed after it was applied (applied as {label}, checksum "
                "differs); restore the original file and put the change in a new migration"
            )
    applied_versions = {row.version for row in applied}
    pending = [f for f in files if f.version not in applied_versions]
    if applied and pending and pending[0].version < max(applied_versions):
        problems.append(
            f"migration {pending[0].filename} is pending but a later migration is already applied; "
            "renumber it after the newest applied migration"
        )
    return MigrationStatus(applied=applied, pending=pending, problems=problems)


def split_statements(script: str) -> list[str]:
    """Split a SQL script into complete statements (semicolons inside strings/triggers are respected)."""
    statements: list[str] = []
    buffer = ""
    for char in script:
        buffer += char
        if char == ";" and sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    if leading_keyword(buffer):
        raise MigrationError(f"incomplete SQL statement at the end of the script: {buffer.strip()[:60]!r}")
    return [s for s in statements if leading_keyword(s)]


def leading_keyword(sql: str) -> str:
    """The statement's first keyword, upper-cased, skipping comments; "" for an empty statement."""
    rest = sql
    while True:
        rest = rest.lstrip()
        if rest.startswith("--"):
            rest = rest.partition("\n")[2]
        elif rest.startswith("/*"):
            rest = rest.partition("*/")[2]
        else:
            break
    match = re.match(r"[A-Za-z]+", rest)
    return match.group(0).upper() if match else ""


class Database:
    """One aiosqlite connection shared by the whole bot; create with ``await Database.open(path)``."""

    def __init__(self, conn: aiosqlite.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path
        # Identifies this process's rows (e.g. in-flight replies) apart from a previous run's leftovers.
        self.instance_id = uuid.uuid4().hex
        self.newly_applied: list[MigrationFile] = []
        self._lock = asyncio.Lock()
        self._owner: asyncio.Task[Any] | None = None
        self._savepoints = 0

    @classmethod
    async def open(cls, path: str | Path, migrations_dir: Path = MIGRATIONS_DIR) -> Database:
        path = Path(path)
        files = load_migrations(migrations_dir)
        path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: no implicit transactions from the sqlite3 module; we issue BEGIN ourselves.
        conn = await aiosqlite.connect(path, isolation_level=None)
        db = cls(conn, path)
        try:
            conn.row_factory = sqlite3.Row
            await conn.execute("PRAGMA busy_timeout = 5000")
            async with conn.execute("PRAGMA journal_mode = WAL") as cursor:
                row = await cursor.fetchone()
            if row is None or str(row[0]).lower() != "wal":
                log.warning("could not enable WAL on %s (journal_mode=%s)", path, row and row[0])
            await conn.execute("PRAGMA synchronous = NORMAL")
            await conn.execute("PRAGMA foreign_keys = ON")
            await db._migrate(files)
        except BaseException:
            await conn.close()
            raise
        return db

    async def close(self) -> None:
        async with self._lock:
            await self._conn.close()

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
        inside a transaction: they wait for the lock this task holds.
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

    # --- migrations -------------------------------------------------------------------------------------

    async def _migrate(self, files: list[MigrationFile]) -> None:
        await self.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version INTEGER PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL,"
            " applied_at TEXT NOT NULL)"
        )
        status = _compare(await self._applied(), files)
        if status.problems:
            more = f" (and {len(status.problems) - 1} more problem(s))" if len(status.problems) > 1 else ""
            raise MigrationError(f"{self.path}: {status.problems[0]}{more}")
        for migration in status.pending:
            statements = split_statements(migration.path.read_text(encoding="utf-8"))
            for keyword in map(leading_keyword, statements):
                if keyword in _TRANSACTION_KEYWORDS:
                    raise MigrationError(
                        f"{migration.filename}: remove its {keyword} statement; "
                        "each migration already runs in its own transaction"
                    )
            async with self.transaction():
                # Another process may have applied it between our check and this write lock.
                if await self.fetchone(
                    "SELECT 1 FROM schema_migrations WHERE version = ?", (migration.version,)
                ):
                    continue
                for statement in statements:
                    await self.execute(statement)
                await self.execute(
                    "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (?, ?, ?, ?)",
                    (migration.version, migration.name, migration.checksum, to_db_time(utcnow())),
                )
            self.newly_applied.append(migration)
            log.info("applied migration %s to %s", migration.filename, self.path)

    async def _applied(self) -> list[AppliedMigration]:
        rows = await self.fetchall(
            "SELECT version, name, checksum, applied_at FROM schema_migrations ORDER BY version"
        )
        return [AppliedMigration(r["version"], r["name"], r["checksum"], r["applied_at"]) for r in rows]


async def migration_status(path: str | Path, migrations_dir: Path = MIGRATIONS_DIR) -> MigrationStatus:
    """Compare a database with the migration files without creating or changing anything."""
    path = Path(path)
    files = load_migrations(migrations_dir)
    if not path.exists():
        return _compare([], files)
    uri = f"{path.resolve().as_uri()}?mode=ro"
    async with aiosqlite.connect(uri, uri=True) as conn:
        conn.row_factory = sqlite3.Row
        await conn.execute("PRAGMA busy_timeout = 5000")
        async with conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
        ) as cursor:
            exists = await cursor.fetchone() is not None
        rows: list[sqlite3.Row] = []
        if exists:
            async with conn.execute(
                "SELECT version, name, checksum, applied_at FROM schema_migrations ORDER BY version"
            ) as cursor:
                rows = list(await cursor.fetchall())
    applied = [AppliedMigration(r["version"], r["name"], r["checksum"], r["applied_at"]) for r in rows]
    return _compare(applied, files)


async def run_migrate_command(
    path: Path, *, check: bool, out: TextIO, migrations_dir: Path = MIGRATIONS_DIR
) -> int:
    """``python -m bot migrate [--check]``. Exit codes: 0 up to date, 1 pending (check only), 2 problem."""
    try:
        if check:
            status = await migration_status(path, migrations_dir)
            out.write(f"database: {path}\n")
            out.write(f"applied: {len(status.applied)} (latest: {_latest(status.applied)})\n")
            for migration in status.pending:
                out.write(f"pending: {migration.filename}\n")
            for problem in status.problems:
                out.write(f"problem: {problem}\n")
            if status.problems:
                return 2
            if status.pending:
                out.write("run `python -m bot migrate` to apply the pending migrations\n")
                return 1
            out.write("up to date\n")
            return 0
        db = await Database.open(path, migrations_dir)
        try:
            for migration in db.newly_applied:
                out.write(f"applied: {migration.filename}\n")
            out.write(f"database {path} is up to date ({len(db.newly_applied)} migration(s) applied)\n")
        finally:
            await db.close()
        return 0
    except (MigrationError, sqlite3.DatabaseError) as exc:
        out.write(f"error: {exc}\n")
        return 2


def _latest(applied: list[AppliedMigration]) -> str:
    return f"{applied[-1].version:04d}_{applied[-1].name}" if applied else "none"
