"""Fixtures: the loopback Discord and model servers, and the real bot running against them in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.client import StreamcordBot
from bot.db import Database
from fakes.discord import FakeDiscord
from fakes.llm_server import FakeLLM
from tests.e2e import World, running_bot


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


@pytest.fixture
async def bot(world: World) -> AsyncIterator[StreamcordBot]:
    async with running_bot(world) as running:
        yield running


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    """A fresh, fully migrated database, closed after the test."""
    database = await Database.open(tmp_path / "s.db")
    yield database
    await database.close()
