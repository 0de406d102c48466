"""What only PostgreSQL does: processes sharing one database (migrations, instance locks, identify gate)."""

from __future__ import annotations

import asyncio
import hashlib
import io
import itertools
import sqlite3
from pathlib import Path

from bot.__main__ import run_migrate_command
from bot.db import Database, DatabaseLocation, migration_status, open_database
from bot.db.migrations import DIALECTS, MIGRATIONS_ROOT, load_migrations
from bot.db.placeholders import to_numbered
from bot.db.sqlite import SqliteDatabase
from bot.identify_gate import LocalIdentifyGate, identify_gate
from bot.shards import on_shards, shard_of
from bot.store.inflight import InflightStore
from bot.store.usage import AnswerStart, UsageStore
from tests.postgres import PostgresServer

# sha256 of migrations/0001_init.sql as main recorded it in every SQLite database before the dialect split.
MAIN_0001_CHECKSUM = "4a133a448ee71e373ebf325f0ee7fcdae521f796e78537e94e560493182b5d84"


def test_placeholders_become_numbered_outside_strings_and_comments() -> None:
    sql = "SELECT '?', \"a?\" FROM t WHERE x = ? AND y = 'it''s ?' -- what?\n AND z IN (?, ?) /* ? */"
    assert to_numbered(sql) == (
        "SELECT '?', \"a?\" FROM t WHERE x = $1 AND y = 'it''s ?' -- what?\n AND z IN ($2, $3) /* ? */"
    )


def test_every_dialect_has_the_same_migration_versions_and_names() -> None:
    listed = {
        dialect: [(m.version, m.name) for m in load_migrations(MIGRATIONS_ROOT / dialect)]
        for dialect in DIALECTS
    }
    sqlite_versions = listed["sqlite"]
    for dialect, versions in listed.items():
        assert versions == sqlite_versions, f"bot/migrations/{dialect} must have the same NNNN_name.sql files"
    stray = sorted(p.name for p in MIGRATIONS_ROOT.glob("*.sql"))
    assert not stray, f"move {stray} into bot/migrations/sqlite/, its twin into bot/migrations/postgres/"


def test_shards_follow_discords_formula() -> None:
    guild = 81384788765712384
    assert shard_of(guild, 4) == (guild >> 22) % 4
    assert shard_of(None, 4) == 0  # direct messages
    mine = on_shards(4, [shard_of(guild, 4)])
    assert mine(guild) and not mine(guild + (1 << 22))
    assert on_shards(4, [0])(None) and not on_shards(4, [1])(None)


async def test_a_sqlite_database_migrated_before_the_dialect_split_opens_unchanged(tmp_path: Path) -> None:
    sqlite_init = MIGRATIONS_ROOT / "sqlite" / "0001_init.sql"
    assert hashlib.sha256(sqlite_init.read_bytes()).hexdigest() == MAIN_0001_CHECKSUM
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:  # what main's runner left behind
        conn.executescript(sqlite_init.read_text())
        conn.execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
            " checksum TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        conn.execute(
            "INSERT INTO schema_migrations VALUES (1, 'init', ?, '2025-01-01T00:00:00.000000Z')",
            (MAIN_0001_CHECKSUM,),
        )
    db = await SqliteDatabase.open(path)  # no "changed after it was applied" error
    await db.close()
    assert 1 not in [m.version for m in db.newly_applied]  # only the later migrations are applied


# --- PostgreSQL -----------------------------------------------------------------------------------------


async def test_processes_starting_together_migrate_once(postgres_url: str) -> None:
    location = DatabaseLocation(Path("unused"), postgres_url)
    dbs = await asyncio.gather(*(open_database(location) for _ in range(4)))
    try:
        assert sorted(len(db.newly_applied) for db in dbs) == [
            0,
            0,
            0,
            len(load_migrations(dbs[0].migrations_dir)),
        ]
        rows = await dbs[0].fetchall("SELECT version, name FROM schema_migrations ORDER BY version")
        assert [(r["version"], r["name"]) for r in rows] == [
            (m.version, m.name) for m in load_migrations(dbs[0].migrations_dir)
        ]
    finally:
        for db in dbs:
            await db.close()


async def test_migrate_command_and_check_on_postgres(postgres_url: str) -> None:
    location = DatabaseLocation(Path("unused"), postgres_url)
    out = io.StringIO()
    assert await run_migrate_command(location, check=True, out=out) == 1
    assert (
        "pending: 0001_init.sql" in out.getvalue() and "@" not in out.getvalue().split("\n")[0].split("//")[0]
    )
    assert await run_migrate_command(location, check=False, out=io.StringIO()) == 0
    out = io.StringIO()
    assert await run_migrate_command(location, check=True, out=out) == 0
    assert "up to date" in out.getvalue()
    assert (await migration_status(location)).ok


async def test_snowflakes_are_bigint(db: Database) -> None:
    snowflake = 1_300_000_000_000_000_000  # past 2**60, as Discord ids will be
    await UsageStore(db).start([AnswerStart("r", snowflake, snowflake + 1, snowflake + 2, "m")])
    row = await db.fetchone("SELECT guild_id, channel_id, user_id FROM usage")
    assert tuple(row) == (snowflake, snowflake + 1, snowflake + 2)


async def test_a_live_processes_replies_are_not_orphans_but_a_dead_ones_are(postgres_url: str) -> None:
    location = DatabaseLocation(Path("unused"), postgres_url)
    a, b, c = [await open_database(location) for _ in range(3)]
    try:
        mine, theirs = 1 << 22, 2 << 22  # shards 1 and 2 of 4
        for db, request_id, guild in (
            (a, "a-live", mine),
            (b, "b-dies", mine),
            (b, "b-dies-other-shard", theirs),
        ):
            await UsageStore(db).start([AnswerStart(request_id, guild, 10, 1, "m")])
            await InflightStore(db).add([AnswerStart(request_id, guild, 10, 1, "m")])
        assert await InflightStore(c).orphans() == []  # a and b both hold their instance locks

        await b.close()  # kill -9 ends its session, and with it its lock, the same way
        everything = [o.request_id for o in await InflightStore(c).orphans()]
        assert everything == ["b-dies", "b-dies-other-shard"]
        my_shards = [o.request_id for o in await InflightStore(c).orphans(on_shards(4, [1]))]
        assert my_shards == ["b-dies"]
    finally:
        await a.close()
        await c.close()


async def test_the_instance_lock_is_taken_again_after_the_server_restarts(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    url = await postgres_server.create_database()
    a = await open_database(DatabaseLocation(tmp_path, url))
    try:
        await UsageStore(a).start([AnswerStart("r", 1 << 22, 10, 1, "m")])
        await InflightStore(a).add([AnswerStart("r", 1 << 22, 10, 1, "m")])
        postgres_server.stop()
        postgres_server.start()
        other = await open_database(DatabaseLocation(tmp_path, url))
        try:
            for _ in range(200):  # the lock is back within a few reconnect attempts
                if not await InflightStore(other).orphans():
                    break
                await asyncio.sleep(0.05)
            assert await InflightStore(other).orphans() == []
        finally:
            await other.close()
    finally:
        await a.close()
        await postgres_server.drop_database(url)


async def test_identify_gate_spaces_identifies_across_processes_by_the_servers_clock(
    postgres_url: str,
) -> None:
    location = DatabaseLocation(Path("unused"), postgres_url)
    a, b = await open_database(location), await open_database(location)
    # Every turn the gate records, as the database server stamped it.
    await a.execute("CREATE TABLE identify_log (n SERIAL, bucket INTEGER, at TIMESTAMPTZ)")
    await a.execute(
        "CREATE FUNCTION log_identify() RETURNS trigger LANGUAGE plpgsql AS"
        " 'BEGIN INSERT INTO identify_log (bucket, at) VALUES (NEW.bucket, NEW.last_at); RETURN NEW; END'"
    )
    await a.execute(
        "CREATE TRIGGER log_identify AFTER INSERT OR UPDATE ON identify_gate"
        " FOR EACH ROW EXECUTE FUNCTION log_identify()"
    )
    interval = 0.5
    try:
        gates = [identify_gate(a), identify_gate(b)]
        await asyncio.gather(
            *(gates[i % 2].wait_turn(bucket, interval) for i, bucket in enumerate([0, 0, 0, 1]))
        )
        log = await a.fetchall("SELECT bucket, at FROM identify_log ORDER BY n")
        bucket0 = [r["at"] for r in log if r["bucket"] == 0]
        assert len(bucket0) == 3
        assert all(
            (later - earlier).total_seconds() >= interval for earlier, later in itertools.pairwise(bucket0)
        )
        # Another bucket has its own turn: it went through before bucket 0's queue had drained.
        assert [r["bucket"] for r in log].index(1) < 3
    finally:
        await a.close()
        await b.close()


async def test_local_identify_gate_spaces_identifies_in_one_process(tmp_path: Path) -> None:
    db = await SqliteDatabase.open(tmp_path / "s.db")
    gate = identify_gate(db)
    await db.close()
    assert isinstance(gate, LocalIdentifyGate)
    loop, interval = asyncio.get_running_loop(), 0.2
    times: list[float] = []

    async def identify() -> None:
        await gate.wait_turn(0, interval)
        times.append(loop.time())

    await asyncio.gather(identify(), identify(), identify())
    assert all(later - earlier >= interval for earlier, later in itertools.pairwise(times)), times
