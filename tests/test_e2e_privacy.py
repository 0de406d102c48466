"""/usage forget: a confirmation first, then the caller's rows go and the server's totals stay."""

from __future__ import annotations

from typing import Any

from bot.client import StreamcordBot
from fakes.discord import FakeMessage
from fakes.llm_server import Scenario
from tests.e2e import World, chat_until_done, command, embed_of, usage, usage_rows


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
    before = embed_of(await usage(world, {"scope": "server"}, user=world.admin))

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
    assert question.content.startswith("Deleted 2 usage record(s)")
    assert question.components == []
    assert [row["user_id"] for row in await usage_rows(bot.db)] == [world.bob]

    mine = embed_of(await usage(world, {"period": "all"}, user=world.alice))
    assert (mine["Requests"], mine["Tokens"]) == ("0", "0 (0 prompt + 0 completion)")
    after = embed_of(await usage(world, {"scope": "server"}, user=world.admin))
    assert (after["Requests"], after["Tokens"]) == (before["Requests"], before["Tokens"])
    assert after["Top users"] == f"1. <@{world.bob}>: 8 tokens"  # the forgotten tokens name nobody
