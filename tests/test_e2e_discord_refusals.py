"""Discord refusing a reply for good (permission revoked, thread archived, no history to reply to): the model
is closed, the usage row says what happened, and the user hears of it where the bot can still write."""

from __future__ import annotations

import pytest

from bot.client import StreamcordBot
from bot.status import UNDELIVERABLE
from fakes.llm_server import LLMRequest
from tests.e2e import World, assert_no_pings, bot_messages, chat, slow, usage_rows, wait_idle


async def assert_model_closed_and_recorded(world: World, bot: StreamcordBot, code: int) -> None:
    await world.llm.wait_for(lambda: len(world.llm.requests) == 1, what="the model asked")
    request: LLMRequest = world.llm.requests[0]
    await world.llm.wait_for(lambda: request.disconnected_at is not None, what="upstream connection closed")
    assert request.finished_at is None
    await wait_idle(world, bot)
    [row] = await usage_rows(bot.db)
    assert row["status"] == "error" and str(code) in row["error"], row
    assert await bot.db.fetchall("SELECT * FROM inflight") == []
    assert_no_pings(world)


@pytest.mark.parametrize(("status", "code"), [(403, 50013), (400, 50083)])
async def test_a_chat_reply_refused_mid_stream_tells_the_requester(
    world: World, bot: StreamcordBot, status: int, code: int
) -> None:
    world.llm.enqueue(slow())
    message_id = await chat(world, "count")
    message = world.discord.messages[message_id]
    await world.discord.wait_for(lambda: "t3" in message.content, what="streaming")
    world.discord.fail_requests("PATCH", "/messages/@original", status, count=100, code=code)
    await assert_model_closed_and_recorded(world, bot, code)
    [note] = [m for m in world.discord.channel_messages(world.channel_id) if m.content == UNDELIVERABLE]
    assert note.ephemeral and note.id != message_id


async def test_a_mention_reply_without_read_history_stops_with_a_note_in_the_channel(
    world: World, bot: StreamcordBot
) -> None:
    world.llm.enqueue(slow())
    world.discord.fail_requests("POST", f"/channels/{world.channel_id}/messages", 400, count=1, code=160002)
    await world.discord.post_message(world.channel_id, world.alice, f"<@{world.discord.bot_user_id}> count")
    await assert_model_closed_and_recorded(world, bot, 160002)
    assert [m.content for m in bot_messages(world)] == [UNDELIVERABLE]


async def test_a_reply_that_can_be_written_nowhere_still_ends_cleanly(
    world: World, bot: StreamcordBot
) -> None:
    world.llm.enqueue(slow())
    await world.discord.post_message(world.channel_id, world.alice, f"<@{world.discord.bot_user_id}> count")
    await world.discord.wait_for(lambda: len(bot_messages(world)) == 1, what="a reply")
    reply = bot_messages(world)[0]
    await world.discord.wait_for(lambda: "t3" in reply.content, what="streaming")
    world.discord.fail_requests("PATCH", f"/messages/{reply.id}", 400, count=100, code=50083)
    world.discord.fail_requests("POST", f"/channels/{world.channel_id}/messages", 400, count=100, code=50083)
    await assert_model_closed_and_recorded(world, bot, 50083)
    assert [m.id for m in bot_messages(world)] == [reply.id]
