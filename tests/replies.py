"""What a user saw of the bot's replies, read from the loopback Discord's message history."""

from __future__ import annotations

import itertools
from typing import Any

from bot.db import Database
from bot.streaming.render import MARKER
from fakes.discord import FakeMessage
from tests.conftest import World

NO_PINGS = {"parse": []}


def bot_messages(world: World, channel_id: int | None = None) -> list[FakeMessage]:
    """The bot's visible (non-ephemeral) messages in a channel, oldest first."""
    return [
        m
        for m in world.discord.channel_messages(channel_id or world.channel_id)
        if m.author_id == world.discord.bot_user_id and not m.ephemeral
    ]


def without_marker(content: str) -> str:
    return content.removesuffix(MARKER).removesuffix(" ")


def assert_grew_monotonically(message: FakeMessage, final_text: str) -> None:
    """Every version showed a prefix of the final text, each at least as long as the one before."""
    shown = [without_marker(v.content) for v in message.versions]
    for before, after in itertools.pairwise(shown):
        assert after.startswith(before), (before, after)
    assert all(final_text.startswith(s) for s in shown)


def assert_no_pings(world: World) -> None:
    """Every message version the bot sent or edited had mentions disabled."""
    for message in world.discord.messages.values():
        if message.author_id != world.discord.bot_user_id:
            continue
        for version in message.versions:
            allowed = version.allowed_mentions or {}
            assert allowed.get("parse") == [], (message.id, version)
            assert not allowed.get("users") and not allowed.get("roles"), (message.id, version)


async def usage_rows(db: Database) -> list[dict[str, Any]]:
    return [dict(r) for r in await db.fetchall("SELECT * FROM usage ORDER BY id")]
