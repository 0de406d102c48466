"""Continuing a cut-off answer ("continue" or ⏩) goes through admission with the requester's roles: an
allowed role lets them continue, role_quotas apply, and a refusal that is quiet for a question stays quiet."""

from __future__ import annotations

import logging

import pytest

from bot.client import StreamcordBot
from bot.status import OUTPUT_LIMIT
from fakes.llm_server import Scenario
from tests.e2e import World, bot_messages, say

STORY = " ".join(f"word{i}" for i in range(60)) + "."


async def answers(world: World, bot: StreamcordBot, count: int) -> list[str]:
    await world.discord.wait_for(
        lambda: len(bot_messages(world)) >= count and len(bot.streams) == 0, timeout=20, what="answers"
    )
    return [m.content for m in bot_messages(world)]


async def cut_off_answer(world: World, bot: StreamcordBot) -> int:
    """Alice asks; the answer stops at the output limit. Returns its message id."""
    await say(world, "config set", {"key": "max_tokens", "value": "5"})
    world.llm.default = Scenario(text=STORY, obey_max_tokens=True)
    await world.discord.post_message(
        world.channel_id, world.alice, f"<@{world.discord.bot_user_id}> tell a story"
    )
    [first] = await answers(world, bot, 1)
    assert first.endswith(OUTPUT_LIMIT)
    return bot_messages(world)[0].id


async def test_continue_and_fast_forward_pass_the_requesters_roles(world: World, bot: StreamcordBot) -> None:
    helpers = world.discord.add_role(world.guild_id, "Helpers", [world.alice])
    await say(world, "config set", {"key": "allowed_roles", "value": f"<@&{helpers}>", "scope": "server"})
    first = await cut_off_answer(world, bot)

    await world.discord.post_message(world.channel_id, world.alice, "continue", reply_to=first)
    await answers(world, bot, 2)
    assert len(world.llm.requests) == 2  # allowed by her role: continued
    await world.discord.add_reaction(world.channel_id, bot_messages(world)[1].id, world.alice, "⏩")
    await answers(world, bot, 3)
    assert len(world.llm.requests) == 3


async def test_continue_respects_role_quotas(world: World, bot: StreamcordBot) -> None:
    helpers = world.discord.add_role(world.guild_id, "Helpers", [world.alice])
    await say(world, "config set", {"key": "daily_token_quota", "value": "10", "scope": "server"})
    await say(world, "config set", {"key": "role_quotas", "value": f"<@&{helpers}>=none", "scope": "server"})
    first = await cut_off_answer(world, bot)  # more than 10 tokens: past the plain quota, not hers

    await world.discord.post_message(world.channel_id, world.alice, "continue", reply_to=first)
    assert not (await answers(world, bot, 2))[1].startswith("You've used")
    assert len(world.llm.requests) == 2

    await say(world, "config set", {"key": "role_quotas", "value": f"<@&{helpers}>=11", "scope": "server"})
    await world.discord.add_reaction(world.channel_id, bot_messages(world)[1].id, world.alice, "⏩")
    refusal = (await answers(world, bot, 3))[2]
    assert refusal.startswith("You've used your 11 tokens for today")
    assert len(world.llm.requests) == 2


async def test_a_requester_blocked_since_gets_no_public_refusal(
    world: World, bot: StreamcordBot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.continuing")
    first = await cut_off_answer(world, bot)
    await say(world, "config set", {"key": "blocked_users", "value": f"<@{world.alice}>", "scope": "server"})

    await world.discord.post_message(world.channel_id, world.alice, "continue", reply_to=first)
    await world.discord.add_reaction(world.channel_id, first, world.alice, "⏩")
    await world.discord.wait_for(
        lambda: sum("Not continuing" in r.getMessage() for r in caplog.records) == 2,
        what="both continue requests refused",
    )
    assert len(bot_messages(world)) == 1 and len(world.llm.requests) == 1
