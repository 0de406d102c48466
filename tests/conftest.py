"""Fixtures: the loopback Discord and model servers, and the real bot running against them in-process."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bot.client import StreamcordBot
from bot.db import Database, DatabaseLocation, open_database
from fakes.discord import FakeDiscord
from fakes.llm_server import FakeLLM
from tests.e2e import World, running_bot
from tests.postgres import PostgresServer, find_bin_dir


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    # Restarts within a test identify again at once; Discord's 5-s spacing is tested in test_fake_discord.
    async with FakeDiscord(identify_interval=0.05) as fake_discord, FakeLLM() as fake_llm:
        # On shard 0 of 1, 2 or 4 shards, so sharded tests know which process owns it.
        guild = fake_discord.add_guild("Streamcord Test", shard=(0, 4))
        yield World(
            discord=fake_discord,
            llm=fake_llm,
            guild_id=guild,
            channel_id=fake_discord.add_channel(guild, "general"),
            alice=fake_discord.add_user(guild, "Alice"),
            bob=fake_discord.add_user(guild, "Bob"),
            mod=fake_discord.add_user(guild, "Mo", manage_messages=True),
            admin=fake_discord.add_user(guild, "Ada", manage_guild=True),
            db_path=tmp_path / "streamcord.sqlite3",
        )


@pytest.fixture
async def bot(world: World) -> AsyncIterator[StreamcordBot]:
    async with running_bot(world) as running:
        yield running


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL server for the session; skipped without the binaries, except in CI."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        message = "PostgreSQL is not installed (apt-get install postgresql)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    server = PostgresServer(bin_dir)
    try:
        server.start()
        yield server
    finally:
        if server.data.exists():
            server.stop()
        server.remove()


@pytest.fixture
async def postgres_url(postgres_server: PostgresServer) -> AsyncIterator[str]:
    """An empty database of its own on the session's server."""
    url = await postgres_server.create_database()
    yield url
    await postgres_server.drop_database(url)


@pytest.fixture(params=["sqlite", "postgres"])
def db_location(request: pytest.FixtureRequest, tmp_path: Path) -> DatabaseLocation:
    """Where a test's database lives, once per backend: the same tests prove both."""
    if request.param == "postgres":
        return DatabaseLocation(path=tmp_path / "unused.db", url=request.getfixturevalue("postgres_url"))
    return DatabaseLocation(path=tmp_path / "s.db")


@pytest.fixture
async def db(db_location: DatabaseLocation) -> AsyncIterator[Database]:
    """A fresh, fully migrated database, closed after the test."""
    database = await open_database(db_location)
    yield database
    await database.close()
