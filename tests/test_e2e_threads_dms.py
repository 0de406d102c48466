"""Threads and direct messages end to end: the real bot against the loopback Discord's threads and DMs."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import discord
import pytest

from bot.client import StreamcordBot
from fakes.discord import MANAGE_MESSAGES
from fakes.llm_server import Scenario
from tests.e2e import (
    LONG,
    STOP,
    STORY,
    World,
    assert_grew_monotonically,
    assert_no_pings,
    assert_stopped,
    bot_messages,
    chat,
    mention,
    overrides,
    running_bot,
    say,
    slow,
    usage_rows,
    wait_final,
    wait_idle,
    wait_stop_button,
)


@dataclass
class Places:
    thread: int  # a public thread in world.channel_id, started by Alice
    other: int  # a second text channel, untouched by the thread's settings


@pytest.fixture
def places(world: World) -> Places:
    """Created before the bot connects, so they arrive in GUILD_CREATE (the thread in `threads`)."""
    return Places(
        thread=world.discord.add_thread(world.guild_id, world.channel_id, "questions", owner_id=world.alice),
        other=world.discord.add_channel(world.guild_id, "other"),
    )


@pytest.fixture
async def bot(world: World, places: Places) -> AsyncIterator[StreamcordBot]:
    """conftest's bot, started only once the thread exists."""
    async with running_bot(world) as running:
        yield running


# --- threads --------------------------------------------------------------------------------------------


async def test_the_bot_sees_the_thread_under_its_parent(
    world: World, places: Places, bot: StreamcordBot
) -> None:
    guild = bot.get_guild(world.guild_id)
    assert guild is not None
    thread = guild.get_channel_or_thread(places.thread)
    assert isinstance(thread, discord.Thread)
    assert thread.parent_id == world.channel_id and thread.parent is guild.get_channel(world.channel_id)


async def test_a_channel_setting_made_in_a_thread_applies_to_its_parent(
    world: World, places: Places, bot: StreamcordBot
) -> None:
    reply = await say(
        world, "config set", {"key": "model", "value": "fake-model-mini"}, channel=places.thread
    )
    assert reply == "Set `model` to `fake-model-mini` for this channel (was not set)."
    assert await overrides(bot) == [("channel", world.channel_id, "model", '"fake-model-mini"')]

    for _ in range(3):
        world.llm.enqueue(Scenario(text="Fine."))
    in_thread = await chat(world, "from the thread", channel=places.thread)
    await wait_final(world, in_thread)
    in_parent = await chat(world, "from the parent")
    await wait_final(world, in_parent)
    await wait_idle(world, bot)  # both answers over: Alice may have two in progress at once
    in_other = await chat(world, "from another channel", channel=places.other)
    await wait_final(world, in_other)

    models = [request.body["model"] for request in world.llm.requests]
    assert models == ["fake-model-mini", "fake-model-mini", "fake-model"]
    assert [m.id for m in bot_messages(world, places.thread)] == [in_thread]
    assert [m.id for m in bot_messages(world)] == [in_parent]


async def test_chat_streams_into_the_thread(world: World, places: Places, bot: StreamcordBot) -> None:
    world.llm.enqueue(Scenario(text=STORY, tokens_per_second=40))
    message_id = await chat(world, "Tell me a story", channel=places.thread)
    await wait_final(world, message_id)
    await wait_idle(world, bot)

    message = world.discord.messages[message_id]
    assert message.channel_id == places.thread and message.content == STORY
    assert len(message.versions) >= 3, "the reply should grow in place"
    assert_grew_monotonically(message, STORY)
    assert [m.id for m in bot_messages(world, places.thread)] == [message_id]
    assert bot_messages(world) == [], "nothing lands in the parent channel"
    assert world.discord.count_429() == 0
    assert_no_pings(world)
    [row] = await usage_rows(bot.db)
    assert row["status"] == "completed"


async def test_a_moderator_stops_an_answer_in_a_thread(
    world: World, places: Places, bot: StreamcordBot
) -> None:
    world.llm.enqueue(slow())
    message_id = await chat(world, "count", channel=places.thread)
    await wait_stop_button(world, message_id)
    # Mo has Manage Messages from a server role; in the thread it resolves through the parent channel.
    await world.discord.add_reaction(places.thread, message_id, world.mod, STOP)
    await assert_stopped(world, bot, message_id, "⏹ stopped by Mo")


async def test_someone_elses_stop_in_a_thread_is_removed_and_the_answer_continues(
    world: World, places: Places, bot: StreamcordBot
) -> None:
    world.llm.enqueue(Scenario(text=LONG[:400], tokens_per_second=60))
    message_id = await chat(world, "count", channel=places.thread)
    await wait_stop_button(world, message_id)
    await world.discord.add_reaction(places.thread, message_id, world.bob, STOP)
    message = world.discord.messages[message_id]
    await world.discord.wait_for(lambda: world.bob not in message.reactions.get(STOP, set()), what="removed")
    removal = f"/channels/{places.thread}/messages/{message_id}/reactions/"
    assert any(
        r.method == "DELETE" and r.path.startswith(removal) and r.status == 204
        for r in world.discord.requests
    )
    await wait_final(world, message_id)
    assert message.content == LONG[:400]
    assert world.llm.requests[0].finished_at is not None


async def test_a_parent_channel_overwrite_governs_who_may_stop_in_its_threads(
    world: World, places: Places
) -> None:
    """Threads have no overwrites of their own: denying Mo Manage Messages on the parent applies inside."""
    world.discord.set_permission_overwrite(world.channel_id, world.mod, deny=MANAGE_MESSAGES)
    world.llm.enqueue(Scenario(text=LONG[:400], tokens_per_second=60))
    async with running_bot(world) as bot:
        message_id = await chat(world, "count", channel=places.thread)
        await wait_stop_button(world, message_id)
        await world.discord.add_reaction(places.thread, message_id, world.mod, STOP)
        message = world.discord.messages[message_id]
        await world.discord.wait_for(
            lambda: world.mod not in message.reactions.get(STOP, set()), what="removed"
        )
        await wait_final(world, message_id)
        await wait_idle(world, bot)
        [row] = await usage_rows(bot.db)
    assert message.content == LONG[:400]
    assert row["status"] == "completed"


# --- direct messages ------------------------------------------------------------------------------------


async def test_a_mention_in_direct_messages_is_ignored(
    world: World, bot: StreamcordBot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    dm = world.discord.add_dm_channel(world.alice)
    heard = bot.wait_for("message", check=lambda m: m.channel.id == dm, timeout=10)
    question = await mention(world, "hello", channel=dm)
    received = await heard
    # The bot got the whole mention (DMs carry content), so only its server-only rule keeps it quiet.
    assert received.id == question and received.guild is None and bot.user in received.mentions

    # The bot answers a later /chat in the server, so it has handled the DM by then.
    world.llm.enqueue(Scenario(text="Server answer."))
    await wait_final(world, await chat(world, "in the server"), lambda content: content == "Server answer.")
    assert [r.body["messages"][-1]["content"] for r in world.llm.requests] == ["in the server"]
    assert [m.id for m in world.discord.channel_messages(dm)] == [question], "no reply in the DM"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], "ignored, not crashed"


async def test_chat_stop_and_config_are_synced_as_server_only(world: World, bot: StreamcordBot) -> None:
    synced = {c["name"]: c for c in world.discord.commands}
    for name in ("chat", "stop", "config"):
        # Both the legacy flag and the contexts (0 = guild; 1 = bot DM and 2 = private channel absent).
        assert (synced[name]["dm_permission"], synced[name]["contexts"]) == (False, [0]), name
