"""The migrations runner: numbered SQL files, applied once each, in order, checksummed.

The runner reaches the database only through ``MigrationTarget``, so every backend applies its own dialect's
files (same versions, one directory per dialect) with the same rules.
"""

from __future__ import annotations

import hashlib
import logging
import re
import sqlite3
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from bot.db.times import to_db_time, utcnow

log = logging.getLogger(__name__)

_MIGRATION_NAME = re.compile(r"^(\d{4})_([A-Za-z0-9_]+)\.sql$")
_TRANSACTION_KEYWORDS = ("BEGIN", "COMMIT", "END", "ROLLBACK", "SAVEPOINT", "RELEASE")
SELECT_APPLIED = "SELECT version, name, checksum, applied_at FROM schema_migrations ORDER BY version"
# One folder per SQL dialect under bot/migrations/, with the same versions and names in each (a test checks);
# package data, so found wherever the bot is installed and whatever the working directory.
MIGRATIONS_ROOT = Path(__file__).resolve().parent.parent / "migrations"
DIALECTS = ("sqlite", "postgres")

Params = Sequence[Any] | dict[str, Any]


class Row(Protocol):
    """A fetched row, read by column name (sqlite3.Row, asyncpg.Record); iterating gives its values."""

    def __getitem__(self, key: str, /) -> Any: ...

    def __iter__(self) -> Iterator[Any]: ...


class MigrationTarget(Protocol):
    """What the runner needs from a database backend."""

    @property
    def migrations_dir(self) -> Path:
        """Where this backend's dialect keeps its migration files."""
        ...

    @property
    def label(self) -> str:
        """How messages name the database (a path, never a password)."""
        ...

    async def execute(self, sql: str, params: Params = ()) -> int: ...

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None: ...

    async def fetchall(self, sql: str, params: Params = ()) -> Sequence[Row]: ...

    def transaction(self) -> AbstractAsyncContextManager[None]:
        """Commits on success, rolls back on error, and keeps other processes' migrations out meanwhile."""
        ...


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
        raise MigrationError(f"migrations directory {migrations_dir} not found; reinstall the bot")
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


def applied_from_rows(rows: Sequence[Row]) -> list[AppliedMigration]:
    """Rows of ``SELECT_APPLIED`` as AppliedMigration."""
    return [AppliedMigration(r["version"], r["name"], r["checksum"], r["applied_at"]) for r in rows]


def compare_migrations(applied: list[AppliedMigration], files: list[MigrationFile]) -> MigrationStatus:
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


async def read_migration_status(
    migrations_dir: Path, applied_rows: Callable[[], Awaitable[Sequence[Row]]]
) -> MigrationStatus:
    """Compare a database with the migration files without creating or changing anything. ``applied_rows``
    is the backend's read-only ``SELECT_APPLIED``: no rows when the database has no migrations table."""
    files = load_migrations(migrations_dir)  # a broken directory is reported before the database is opened
    return compare_migrations(applied_from_rows(await applied_rows()), files)


def split_statements(script: str) -> list[str]:
    """Split a SQL script into complete statements (semicolons inside strings/triggers are respected)."""
    statements: list[str] = []
    buffer = ""
    for char in script:
        buffer += char
        if char == ";" and sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    if _leading_keyword(buffer):
        raise MigrationError(f"incomplete SQL statement at the end of the script: {buffer.strip()[:60]!r}")
    return [s for s in statements if _leading_keyword(s)]


def _leading_keyword(sql: str) -> str:
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


async def apply_migrations(db: MigrationTarget) -> list[MigrationFile]:
    """Apply the pending migrations, each in its own transaction; returns those this call applied."""
    files = load_migrations(db.migrations_dir)
    await db.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL,"
        " applied_at TEXT NOT NULL)"
    )
    status = compare_migrations(applied_from_rows(await db.fetchall(SELECT_APPLIED)), files)
    if status.problems:
        more = f" (and {len(status.problems) - 1} more problem(s))" if len(status.problems) > 1 else ""
        raise MigrationError(f"{db.label}: {status.problems[0]}{more}")
    applied: list[MigrationFile] = []
    for migration in status.pending:
        statements = split_statements(migration.path.read_text(encoding="utf-8"))
        for keyword in map(_leading_keyword, statements):
            if keyword in _TRANSACTION_KEYWORDS:
                raise MigrationError(
                    f"{migration.filename}: remove its {keyword} statement; "
                    "each migration already runs in its own transaction"
                )
        async with db.transaction():
            # Another process may have applied it between our check and this transaction.
            if await db.fetchone("SELECT 1 FROM schema_migrations WHERE version = ?", (migration.version,)):
                continue
            for statement in statements:
                await db.execute(statement)
            await db.execute(
                "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (?, ?, ?, ?)",
                (migration.version, migration.name, migration.checksum, to_db_time(utcnow())),
            )
        applied.append(migration)
        log.info("applied migration %s to %s", migration.filename, db.label)
    return applied
