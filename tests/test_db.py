import asyncio
import hashlib
import io
import shutil
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.__main__ import run_migrate_command
from bot.db import Database, DatabaseLocation, MigrationError, from_db_time, open_database, to_db_time
from bot.db.migrations import load_migrations, split_statements
from bot.db.sqlite import MIGRATIONS_DIR, SqliteDatabase, migration_status
from tests.postgres import INTEGRITY_ERRORS


@pytest.fixture
def migrations(tmp_path: Path) -> Path:
    """A private copy of the first real migration that a test may change (only the first: a test's own
    0002 must follow it whatever later migrations the project adds)."""
    directory = tmp_path / "migrations"
    directory.mkdir()
    shutil.copy(MIGRATIONS_DIR / "0001_init.sql", directory)
    return directory


def add_migration(directory: Path, name: str, sql: str) -> Path:
    path = directory / name
    path.write_text(sql, encoding="utf-8")
    return path


def table_names(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


async def test_migrates_empty_database_and_creates_parent_dir(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "streamcord.db"
    db = await SqliteDatabase.open(path)
    try:
        assert [m.filename for m in db.newly_applied] == [m.filename for m in load_migrations(MIGRATIONS_DIR)]
        row = await db.fetchone(
            "SELECT version, name, checksum, applied_at FROM schema_migrations WHERE version = 1"
        )
        assert row is not None
        expected = hashlib.sha256((MIGRATIONS_DIR / "0001_init.sql").read_bytes()).hexdigest()
        assert (row["version"], row["name"], row["checksum"]) == (1, "init", expected)
        from_db_time(row["applied_at"])  # stored in the one time format
    finally:
        await db.close()
    assert {"settings", "config_audit", "usage", "inflight", "schema_migrations"} <= table_names(path)


async def test_reopen_is_a_no_op(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    db = await SqliteDatabase.open(path)
    first = await db.fetchall("SELECT * FROM schema_migrations")
    await db.close()

    db = await SqliteDatabase.open(path)
    try:
        assert db.newly_applied == []
        assert [tuple(r) for r in await db.fetchall("SELECT * FROM schema_migrations")] == [
            tuple(r) for r in first
        ]
    finally:
        await db.close()


async def test_pragmas(tmp_path: Path) -> None:
    db = await SqliteDatabase.open(tmp_path / "s.db")
    assert (await db.fetchone("PRAGMA journal_mode"))[0] == "wal"
    assert (await db.fetchone("PRAGMA foreign_keys"))[0] == 1
    assert (await db.fetchone("PRAGMA busy_timeout"))[0] == 5000
    assert (await db.fetchone("PRAGMA synchronous"))[0] == 1  # NORMAL
    await db.close()


async def test_changed_migration_is_refused(tmp_path: Path, migrations: Path) -> None:
    path = tmp_path / "s.db"
    await (await SqliteDatabase.open(path, migrations)).close()
    init = migrations / "0001_init.sql"
    init.write_text(init.read_text() + "\nCREATE TABLE sneaky (x INTEGER);\n")

    with pytest.raises(MigrationError) as info:
        await SqliteDatabase.open(path, migrations)
    message = str(info.value)
    assert "0001_init.sql" in message and "changed" in message and "new migration" in message
    assert "\n" not in message
    assert "sneaky" not in table_names(path)


async def test_newer_database_is_refused(tmp_path: Path, migrations: Path) -> None:
    path = tmp_path / "s.db"
    extra = add_migration(migrations, "0002_extra.sql", "CREATE TABLE extra (x INTEGER);")
    await (await SqliteDatabase.open(path, migrations)).close()
    extra.unlink()

    with pytest.raises(MigrationError) as info:
        await SqliteDatabase.open(path, migrations)
    message = str(info.value)
    assert "newer" in message and "0002_extra.sql" in message
    assert "\n" not in message


async def test_check_reports_pending_without_touching_the_database(tmp_path: Path, migrations: Path) -> None:
    path = tmp_path / "s.db"
    await (await SqliteDatabase.open(path, migrations)).close()
    add_migration(migrations, "0002_more.sql", "-- adds t\nCREATE TABLE t (x TEXT DEFAULT 'a;b');")
    before = path.read_bytes()

    status = await migration_status(path, migrations)
    location = DatabaseLocation(path)
    assert [m.version for m in status.applied] == [1]
    assert [m.filename for m in status.pending] == ["0002_more.sql"]
    assert status.ok

    out = io.StringIO()
    assert await run_migrate_command(location, check=True, out=out, migrations_dir=migrations) == 1
    assert "pending: 0002_more.sql" in out.getvalue()
    assert path.read_bytes() == before
    assert "t" not in table_names(path)

    out = io.StringIO()
    assert await run_migrate_command(location, check=False, out=out, migrations_dir=migrations) == 0
    assert "applied: 0002_more.sql" in out.getvalue()
    assert "t" in table_names(path)

    out = io.StringIO()
    assert await run_migrate_command(location, check=True, out=out, migrations_dir=migrations) == 0
    assert "up to date" in out.getvalue()


async def test_check_on_missing_database_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "absent" / "s.db"
    status = await migration_status(path)
    everything = [m.version for m in load_migrations(MIGRATIONS_DIR)]
    assert status.applied == [] and [m.version for m in status.pending] == everything
    assert not path.parent.exists()


async def test_check_reports_problems_with_exit_code_2(tmp_path: Path, migrations: Path) -> None:
    path = tmp_path / "s.db"
    await (await SqliteDatabase.open(path, migrations)).close()
    init = migrations / "0001_init.sql"
    init.write_text(init.read_text() + "\n-- edited\n")

    status = await migration_status(path, migrations)
    location = DatabaseLocation(path)
    assert not status.ok and "0001_init.sql" in status.problems[0]
    out = io.StringIO()
    assert await run_migrate_command(location, check=True, out=out, migrations_dir=migrations) == 2
    assert "problem:" in out.getvalue()
    out = io.StringIO()
    assert await run_migrate_command(location, check=False, out=out, migrations_dir=migrations) == 2
    assert out.getvalue().startswith("error:")


async def test_failed_migration_is_rolled_back(tmp_path: Path, migrations: Path) -> None:
    path = tmp_path / "s.db"
    add_migration(
        migrations, "0002_broken.sql", "CREATE TABLE half (x INTEGER);\nINSERT INTO nowhere VALUES (1);"
    )
    with pytest.raises(sqlite3.OperationalError):
        await SqliteDatabase.open(path, migrations)
    assert "half" not in table_names(path)
    with sqlite3.connect(path) as conn:
        assert [r[0] for r in conn.execute("SELECT version FROM schema_migrations")] == [1]


async def test_transaction_statements_in_migrations_are_refused(tmp_path: Path, migrations: Path) -> None:
    add_migration(migrations, "0002_tx.sql", "BEGIN;\nCREATE TABLE t (x INTEGER);\nCOMMIT;")
    with pytest.raises(MigrationError, match=r"0002_tx\.sql"):
        await SqliteDatabase.open(tmp_path / "s.db", migrations)


def test_split_statements_respects_strings_comments_and_triggers() -> None:
    script = """
    -- comment; with a semicolon
    CREATE TABLE a (x TEXT DEFAULT ';');
    /* block; comment */
    CREATE TRIGGER tr AFTER INSERT ON a BEGIN
        UPDATE a SET x = 'y;z';
        DELETE FROM a WHERE x = '';
    END;
    -- trailing comment
    """
    statements = split_statements(script)
    assert len(statements) == 2
    assert statements[1].startswith("/* block; comment */") and statements[1].endswith("END;")
    with pytest.raises(MigrationError, match="incomplete"):
        split_statements("CREATE TABLE a (x INTEGER);\nCREATE TABLE b (x INTEGER)")


@pytest.fixture
async def scratch(tmp_path: Path, db_location: DatabaseLocation) -> AsyncIterator[Database]:
    """A one-table database on each backend, for the transaction rules both must keep."""
    directory = tmp_path / "scratch_migrations"
    directory.mkdir()
    add_migration(directory, "0001_t.sql", "CREATE TABLE t (x INTEGER NOT NULL);")
    db = await open_database(db_location, directory)
    yield db
    await db.close()


async def values(db: Database) -> list[int]:
    return [row["x"] for row in await db.fetchall("SELECT x FROM t ORDER BY x")]


async def test_transaction_commits_and_rolls_back(scratch: Database) -> None:
    async with scratch.transaction():
        await scratch.execute("INSERT INTO t VALUES (1)")
        await scratch.execute("INSERT INTO t VALUES (2)")
    with pytest.raises(RuntimeError, match="boom"):
        async with scratch.transaction():
            await scratch.execute("INSERT INTO t VALUES (3)")
            raise RuntimeError("boom")
    with pytest.raises(INTEGRITY_ERRORS):
        async with scratch.transaction():
            await scratch.execute("INSERT INTO t VALUES (4)")
            await scratch.execute("INSERT INTO t VALUES (NULL)")
    assert await values(scratch) == [1, 2]


async def test_nested_transaction_is_a_savepoint(scratch: Database) -> None:
    async with scratch.transaction():
        await scratch.execute("INSERT INTO t VALUES (1)")
        with pytest.raises(ValueError):
            async with scratch.transaction():
                await scratch.execute("INSERT INTO t VALUES (2)")
                raise ValueError
        async with scratch.transaction():
            await scratch.execute("INSERT INTO t VALUES (3)")
    assert await values(scratch) == [1, 3]


async def test_statement_from_another_task_never_joins_an_open_transaction(scratch: Database) -> None:
    other_called = asyncio.Event()

    async def other() -> None:
        other_called.set()
        await scratch.execute("INSERT INTO t VALUES (2)")

    with pytest.raises(RuntimeError):
        async with scratch.transaction():
            await scratch.execute("INSERT INTO t VALUES (1)")
            task = asyncio.create_task(other())
            # By the time this returns, other() has issued its execute() (it does not yield before that).
            await other_called.wait()
            raise RuntimeError("roll back")
    await task
    assert await values(scratch) == [2]


async def test_cancelled_transaction_rolls_back_and_frees_the_connection(scratch: Database) -> None:
    inside = asyncio.Event()

    async def stuck() -> None:
        async with scratch.transaction():
            await scratch.execute("INSERT INTO t VALUES (1)")
            inside.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(stuck())
    await inside.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with scratch.transaction():
        await scratch.execute("INSERT INTO t VALUES (2)")
    assert await values(scratch) == [2]


def test_time_format_round_trips_and_sorts() -> None:
    early = from_db_time("2025-01-02T03:04:05.000006Z")
    assert to_db_time(early) == "2025-01-02T03:04:05.000006Z"
    assert to_db_time(early.replace(tzinfo=None)) == "2025-01-02T03:04:05.000006Z"
    assert to_db_time(early) < to_db_time(from_db_time("2025-01-02T03:04:05.000007Z"))
