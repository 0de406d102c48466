"""What the stores need from a database, whichever backend runs it (SQLite or PostgreSQL).

Stores write SQL once, with ``?`` placeholders, and read rows by column name; each backend translates what
its dialect needs in one place (PostgreSQL: ``bot.db.placeholders``).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Protocol

from bot.db.migrations import MigrationFile, Params, Row


class DatabaseUnavailable(ConnectionError):
    """The database cannot be reached (down, restarting, unreachable); the message says which one."""


# What a user is told when their request needs the database and it is away.
DATABASE_DOWN = "I can't reach my database right now. Try again in a moment."


class Database(Protocol):
    """A connection (or pool) the whole process shares."""

    # Identifies this process's rows (e.g. in-flight replies) apart from other processes' and earlier runs'.
    instance_id: str
    newly_applied: list[MigrationFile]

    @property
    def label(self) -> str:
        """How messages name the database (never a password)."""
        ...

    @property
    def migrations_dir(self) -> Path: ...

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; returns the number of rows changed."""
        ...

    async def execute_many(self, sql: str, rows: Sequence[Params]) -> None:
        """Run one statement once per row of parameters, in one round trip."""
        ...

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None: ...

    async def fetchall(self, sql: str, params: Params = ()) -> Sequence[Row]: ...

    def transaction(self) -> AbstractAsyncContextManager[None]:
        """Commits on success, rolls back on error; nested use in the same task is a savepoint."""
        ...

    def snapshot(self) -> AbstractAsyncContextManager[None]:
        """Reads inside all see the same committed rows (for reports made of several queries)."""
        ...

    async def instance_alive(self, instance_id: str) -> bool:
        """Whether the process that wrote ``instance_id`` on its rows still runs."""
        ...

    async def close(self) -> None: ...
