"""Fixtures: the loopback Discord and model servers, and the real bot running against them in-process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import discord
import pytest

from bot.client import StreamcordBot, open_bot
from bot.config import load_config
from bot.db import Database, DatabaseLocation, open_database
from tests.fakes.discord_server import FakeDiscord
from tests.fakes.llm_server import FakeLLM
from tests.postgres import PostgresServer, find_bin_dir


@dataclass
class World:
    discord: FakeDiscord
    llm: FakeLLM
    guild_id: int
    channel_id: int
    alice: int  # asks questions
    bob: int  # another member, no special permissions
    mod: int  # Manage Messages
    admin: int  # Manage Server
    db_path: Path

    def env(self, **overrides: str) -> dict[str, str]:
        env = {
            "DISCORD_TOKEN": self.discord.token,
            "DEFAULT_MODEL": "fake-model",
            "OPENAI_BASE_URL": self.llm.base_url,
            "OPENAI_API_KEY": self.llm.api_key,
            "DATABASE_PATH": str(self.db_path),
            "DISCORD_API_BASE": self.discord.api_base,
            "DISCORD_GATEWAY_URL": self.discord.gateway_url,
            "LLM_MAX_RETRIES": "0",
            "LLM_TIMEOUT": "5",
        }
        env.update(overrides)
        return env


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with FakeDiscord() as fake_discord, FakeLLM() as fake_llm:
        guild = fake_discord.add_guild("Streamcord Test")
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


@contextlib.asynccontextmanager
async def running_bot(world: World, **env: str) -> AsyncIterator[StreamcordBot]:
    """The real bot, assembled exactly as `python -m bot` does, connected to the loopback servers."""
    config = load_config(world.env(**env), env_file=os.devnull)
    saved = discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    try:
        async with open_bot(config) as bot:
            task = asyncio.create_task(bot.start(config.discord_token))
            try:
                await world.discord.wait_ready()
                # Not wait_until_ready(): discord.py holds READY back 2 s for guild chunking.
                await world.discord.wait_for(
                    lambda: bot.get_guild(world.guild_id) is not None, what="guild cached"
                )
                yield bot
            finally:
                await bot.close()
                await task
    finally:
        discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = saved


@pytest.fixture
async def bot(world: World) -> AsyncIterator[StreamcordBot]:
    async with running_bot(world) as running:
        yield running


@contextlib.asynccontextmanager
async def bot_process(world: World, log_path: Path, **env: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """`python -m bot` as a separate process, for signals and crashes; its log goes to log_path."""
    ready_before = world.discord.ready_count
    with log_path.open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            env={**os.environ, **world.env(**env)},
            cwd=log_path.parent,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
    try:
        await world.discord.wait_for(
            lambda: world.discord.ready_count > ready_before or process.returncode is not None,
            timeout=30,
            what="bot process connected",
        )
        if process.returncode is not None:
            raise AssertionError(f"the bot exited with {process.returncode}; see {log_path}")
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


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
