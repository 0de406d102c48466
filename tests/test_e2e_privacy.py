"""/usage forget: a confirmation first, then the caller's rows go and the server's totals stay."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bot.client import StreamcordBot
from bot.db import DATABASE_DOWN, to_db_time, utcnow
from fakes.discord import FakeMessage
from fakes.llm_server import Scenario
from tests.e2e import World, chat_until_done, command, embed_of, running_bot, say, usage, usage_rows
from tests.postgres import PostgresServer


def buttons(message: FakeMessage) -> list[dict[str, Any]]:
    return [button for row in message.components for button in row["components"]]


async def press(world: World, message: FakeMessage, label: str, user: int) -> None:
    [button] = [b for b in buttons(message) if b["label"] == label]
    versions = len(message.versions)
    await world.discord.click(message.id, user, button["custom_id"])
    await world.discord.wait_for(lambda: len(message.versions) > versions, what=f"{label} pressed")


async def test_forget_asks_first_then_deletes_only_your_rows(world: World, bot: StreamcordBot) -> None:
    for user, tokens in ((world.alice, 100), (world.alice, 20), (world.bob, 7)):
        world.llm.enqueue(Scenario(text="x", prompt_tokens=tokens))
        await chat_until_done(world, bot, "hi", user=user)
    yesterday = to_db_time(utcnow() - timedelta(days=1))  # today's rows stay (see the next test)
    await bot.db.execute("UPDATE usage SET started_at = ?", (yesterday,))
    before = embed_of(await usage(world, {"scope": "server", "period": "7d"}, user=world.admin))

    question = await command(world, "usage forget", user=world.alice)
    assert question.ephemeral and question.content.startswith(
        "Delete every usage record of yours in this server?"
    )
    assert [b["label"] for b in buttons(question)] == ["Delete my usage", "Cancel"]
    await press(world, question, "Cancel", world.alice)
    assert question.content == "Nothing was deleted." and question.components == []
    assert len(await usage_rows(bot.db)) == 3

    question = await command(world, "usage forget", user=world.alice)
    await press(world, question, "Delete my usage", world.alice)
    assert question.content == (
        "Deleted 2 usage record(s); the totals keep their tokens under nobody's name."
    )
    assert question.components == []
    assert [row["user_id"] for row in await usage_rows(bot.db)] == [world.bob]

    mine = embed_of(await usage(world, {"period": "all"}, user=world.alice))
    assert (mine["Requests"], mine["Tokens"]) == ("0", "0 (0 prompt + 0 completion)")
    after = embed_of(await usage(world, {"scope": "server", "period": "7d"}, user=world.admin))
    assert (after["Requests"], after["Tokens"]) == (before["Requests"], before["Tokens"])
    assert after["Top users"] == f"1. <@{world.bob}>: 8 tokens"  # the forgotten tokens name nobody


async def test_forget_resets_neither_the_daily_quota_nor_the_cooldown(
    world: World, bot: StreamcordBot
) -> None:
    await say(world, "config set", {"key": "daily_token_quota", "value": "50", "scope": "server"})
    world.llm.enqueue(Scenario(text="spent", prompt_tokens=60))
    await chat_until_done(world, bot, "first", user=world.alice)

    question = await command(world, "usage forget", user=world.alice)
    await press(world, question, "Delete my usage", world.alice)
    assert question.content == (
        "Deleted 0 usage record(s); the totals keep their tokens under nobody's name. Today's 1 stay until"
        " the day ends (UTC): they count toward today's quota and cooldown."
        " Forget again tomorrow to delete them."
    )
    refusal = await chat_until_done(world, bot, "second", user=world.alice)
    assert refusal.ephemeral and refusal.content.startswith("You've used your 50 tokens for today")

    await say(world, "config set", {"key": "daily_token_quota", "value": "none", "scope": "server"})
    await say(world, "config set", {"key": "cooldown_seconds", "value": "600", "scope": "server"})
    await press(world, await command(world, "usage forget", user=world.alice), "Delete my usage", world.alice)
    refusal = await chat_until_done(world, bot, "third", user=world.alice)
    assert refusal.ephemeral and refusal.content.startswith("Slow down a little")
    assert len(world.llm.requests) == 1


async def test_an_unreachable_database_gets_a_short_message(
    world: World, postgres_server: PostgresServer, postgres_url: str
) -> None:
    async with running_bot(world, DATABASE_URL=postgres_url):
        question = await command(world, "usage forget", user=world.alice)
        postgres_server.stop()
        try:
            await press(world, question, "Delete my usage", world.alice)
            assert question.content == f"Nothing was deleted: {DATABASE_DOWN}"
            text = await say(world, "config set", {"key": "temperature", "value": "0.2"})
            assert text == DATABASE_DOWN
        finally:
            postgres_server.start()
