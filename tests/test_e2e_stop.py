"""Stop means stop: 🛑, /stop, deletions, SIGTERM and kill -9 end generation upstream and lose nothing."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
from pathlib import Path

import pytest

from bot import recovery
from bot.client import StreamcordBot
from fakes.llm_server import Scenario
from tests.e2e import (
    LONG,
    STOP,
    World,
    assert_stopped,
    bot_messages,
    bot_process,
    chat,
    inflight_message_ids,
    mention,
    running_bot,
    slow,
    usage_rows,
    wait_final,
    wait_idle,
    wait_stop_button,
)


@pytest.mark.parametrize(("who", "name"), [("alice", "Alice"), ("mod", "Mo")], ids=["requester", "moderator"])
async def test_the_reaction_stops_the_answer(world: World, bot: StreamcordBot, who: str, name: str) -> None:
    world.llm.enqueue(slow())
    message_id = await chat(world, "count")
    await wait_stop_button(world, message_id)
    await world.discord.add_reaction(world.channel_id, message_id, getattr(world, who), STOP)
    await assert_stopped(world, bot, message_id, f"⏹ stopped by {name}")


async def test_slash_stop_stops_the_callers_answer(world: World, bot: StreamcordBot) -> None:
    world.llm.enqueue(slow())
    message_id = await chat(world, "count")
    await wait_stop_button(world, message_id)
    interaction = await world.discord.run_slash_command(world.guild_id, world.channel_id, world.alice, "stop")
    await world.discord.wait_for(lambda: interaction.message_id is not None, what="/stop answered")
    reply = world.discord.messages[interaction.message_id]  # type: ignore[index]
    assert reply.ephemeral and reply.content == "Stopped."
    await assert_stopped(world, bot, message_id, "⏹ stopped by Alice")


async def test_someone_elses_reaction_is_ignored_and_removed(world: World, bot: StreamcordBot) -> None:
    world.llm.enqueue(Scenario(text=LONG[:400], tokens_per_second=60))
    message_id = await chat(world, "count")
    await wait_stop_button(world, message_id)
    await world.discord.add_reaction(world.channel_id, message_id, world.bob, STOP)
    message = world.discord.messages[message_id]
    await world.discord.wait_for(lambda: world.bob not in message.reactions.get(STOP, set()), what="removed")
    await wait_final(world, message_id)
    assert message.content == LONG[:400]
    assert world.llm.requests[0].finished_at is not None


async def test_reaction_on_a_finished_reply_does_nothing(world: World, bot: StreamcordBot) -> None:
    world.llm.enqueue(Scenario(text="Done already."))
    message_id = await chat(world, "quick")
    await wait_final(world, message_id)
    await wait_idle(world, bot)
    message = world.discord.messages[message_id]
    versions, requests = len(message.versions), len(world.discord.requests)
    await world.discord.add_reaction(world.channel_id, message_id, world.alice, STOP)
    # The bot answers a later command, so it has seen the reaction by then.
    world.llm.enqueue(Scenario(text="Still here."))
    await wait_final(world, await chat(world, "again"), lambda content: content == "Still here.")
    assert len(message.versions) == versions
    assert message.content == "Done already."
    edits_after = [r for r in world.discord.requests[requests:] if str(message_id) in r.path]
    assert edits_after == []


async def test_deleting_the_question_stops_a_mention_reply(world: World, bot: StreamcordBot) -> None:
    world.llm.enqueue(slow())
    question = await mention(world, "count for me")
    await world.discord.wait_for(lambda: len(bot_messages(world)) == 1, what="a reply")
    reply = bot_messages(world)[0]
    await wait_stop_button(world, reply.id)
    await world.discord.delete_message(world.channel_id, question)
    await assert_stopped(world, bot, reply.id, "⏹ stopped: the question was deleted")


async def test_sigterm_finalises_answers_in_flight_and_exits_cleanly(world: World, tmp_path: Path) -> None:
    for _ in range(2):
        world.llm.enqueue(slow())
    async with bot_process(world, tmp_path / "bot.log") as process:
        replies = [await chat(world, "count"), await chat(world, "count again")]
        for message_id in replies:
            await wait_stop_button(world, message_id)
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 30) == 0, (tmp_path / "bot.log").read_text()
    for request in world.llm.requests:
        assert request.disconnected_at is not None and request.tokens_after_disconnect == 0
    for message_id in replies:
        message = world.discord.messages[message_id]
        assert message.content.endswith("⏹ interrupted: the bot restarted")
        assert world.discord.bot_user_id not in message.reactions.get(STOP, set())
    with sqlite3.connect(world.db_path) as conn:
        statuses = [s for (s,) in conn.execute("SELECT status FROM usage")]
        assert statuses == ["interrupted", "interrupted"]
        assert conn.execute("SELECT count(*) FROM inflight").fetchone() == (0,)


@pytest.mark.parametrize("outage", [0, 12], ids=["", "through_a_discord_outage"])
async def test_kill_9_then_restart_finalises_the_orphaned_reply(
    world: World, tmp_path: Path, outage: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recovery, "RETRY_BACKOFF", 0.01)  # the rounds of retries, not their spacing
    world.llm.enqueue(slow())
    async with bot_process(world, tmp_path / "bot.log") as process:
        message_id = await chat(world, "count")
        await wait_stop_button(world, message_id)
        await world.discord.wait_for(
            lambda: inflight_message_ids(world.db_path) == [message_id], what="recorded"
        )
        process.kill()
        await process.wait()
    await world.llm.wait_for(
        lambda: world.llm.requests[0].disconnected_at is not None, what="upstream closed"
    )
    shown = world.discord.messages[message_id].content
    assert shown.endswith("▌")

    message = world.discord.messages[message_id]
    # An outage as the bot starts again: recovery retries until it passes rather than leave the cursor.
    world.discord.fail_requests("PATCH", f"/messages/{message_id}", 503, count=outage)
    async with running_bot(world) as bot:
        await wait_final(world, message_id, lambda content: "interrupted" in content)
        await world.discord.wait_for(lambda: inflight_message_ids(world.db_path) == [], what="orphan closed")
        await world.discord.wait_for(
            lambda: world.discord.bot_user_id not in message.reactions.get(STOP, set()), what="button removed"
        )
        [row] = await usage_rows(bot.db)
    assert row["status"] == "interrupted" and row["estimated"] == 1
    assert row["completion_tokens"] > 0
    assert (
        world.discord.messages[message_id].content
        == shown.removesuffix(" ▌") + "\n⏹ interrupted: the bot restarted"
    )


async def test_answers_past_the_concurrency_cap_wait_their_turn_and_can_be_stopped(world: World) -> None:
    world.llm.enqueue(Scenario(text=LONG[:300], tokens_per_second=60))
    world.llm.enqueue(Scenario(text="Second."))
    async with running_bot(world, MAX_CONCURRENT_STREAMS="1", MAX_STREAMS_PER_USER="3") as bot:
        first = await chat(world, "one")
        queued = await chat(world, "two")
        third = await chat(world, "three")
        # Both queued answers are acknowledged at once with the placeholder, before the model is asked.
        assert world.discord.messages[queued].versions[0].content == "⏳ queued: next ▌"
        assert len(world.llm.requests) == 1
        await world.discord.wait_for(
            lambda: world.discord.bot_user_id in world.discord.messages[third].reactions.get(STOP, set()),
            what="stop button on the queued answer",
        )
        await world.discord.add_reaction(world.channel_id, third, world.alice, STOP)
        await wait_final(world, first)
        await wait_final(world, queued, lambda content: content == "Second.")
        await wait_final(world, third, lambda content: content.endswith("⏹ stopped by Alice"))
        await wait_idle(world, bot)
        statuses = [row["status"] for row in await usage_rows(bot.db)]
    assert len(world.llm.requests) == 2, "the stopped answer never reached the model"
    assert world.llm.requests[0].finished_at < world.llm.requests[1].started_at
    assert sorted(statuses) == ["completed", "completed", "stopped"]


async def test_no_new_answers_start_while_the_bot_shuts_down(world: World, bot: StreamcordBot) -> None:
    bot.admission.closing = True  # what close() sets before it waits for the answers in flight
    interaction = await world.discord.run_slash_command(
        world.guild_id, world.channel_id, world.alice, "chat", {"prompt": "hello?"}
    )
    await world.discord.wait_for(lambda: interaction.message_id is not None, what="refusal")
    refusal = world.discord.messages[interaction.message_id]  # type: ignore[index]
    assert refusal.ephemeral and refusal.content == "I'm restarting. Ask again in a moment."
    assert world.llm.requests == []
