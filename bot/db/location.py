"""Which backend a process uses: PostgreSQL when DATABASE_URL names one, else the SQLite file. Each backend
is imported when it is opened: asyncpg (about 12 MB) only in processes that use PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yarl

from bot.db import sqlite
from bot.db.base import Database
from bot.db.migrations import MigrationStatus

URL_SCHEMES = ("postgresql", "postgres")


def is_postgres_url(value: str) -> bool:
    return yarl.URL(value).scheme in URL_SCHEMES


def describe_url(url: str) -> str:
    """The URL without password or query (which may hold one), for messages and logs."""
    parsed = yarl.URL(url)
    return str(parsed.with_password(None).with_query(None).with_fragment(None))


@dataclass(frozen=True)
class DatabaseLocation:
    path: Path  # the SQLite file, used when url is None
    url: str | None = None  # postgresql://…
    busy_timeout: float = sqlite.BUSY_TIMEOUT  # SQLite: seconds a statement waits for another process's lock

    @property
    def label(self) -> str:
        return str(self.path) if self.url is None else describe_url(self.url)


async def open_database(location: DatabaseLocation, migrations_dir: Path | None = None) -> Database:
    """Open (creating an SQLite file if needed) and migrate; raises DatabaseUnavailable if unreachable.
    migrations_dir: another folder of this backend's dialect (tests)."""
    if location.url is not None:
        from bot.db import postgres

        return await postgres.PostgresDatabase.open(location.url, migrations_dir or postgres.MIGRATIONS_DIR)
    return await sqlite.SqliteDatabase.open(
        location.path, migrations_dir or sqlite.MIGRATIONS_DIR, busy_timeout=location.busy_timeout
    )


async def migration_status(location: DatabaseLocation, migrations_dir: Path | None = None) -> MigrationStatus:
    """The applied and pending migrations, without creating or changing anything."""
    if location.url is not None:
        from bot.db import postgres

        return await postgres.migration_status(location.url, migrations_dir or postgres.MIGRATIONS_DIR)
    from bot.db import sqlite

    return await sqlite.migration_status(location.path, migrations_dir or sqlite.MIGRATIONS_DIR)
