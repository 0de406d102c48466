"""Who may ask: allowed/blocked roles and users, and role quotas, end to end."""

from __future__ import annotations

import logging

import pytest

from bot.access import NOT_ALLOWED
from bot.client import StreamcordBot
from fakes.llm_server import Scenario
from tests.e2e import World, asks, bot_messages, chat_until_done, say


async def test_roles_and_users_allowed_and_blocked(
    world: World, bot: StreamcordBot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="cogs.chat")
    helpers = world.discord.add_role(world.guild_id, "Helpers", [world.alice, world.bob])
    muted = world.discord.add_role(world.guild_id, "Muted", [world.bob])
    answer = Scenario().text

    text = await say(
        world, "config set", {"key": "allowed_roles", "value": f"<@&{helpers}>", "scope": "server"}
    )
    assert text == f"Set `allowed_roles` to `<@&{helpers}>` for the whole server (was not set)."
    assert await asks(world, bot, world.alice) == answer
    assert await asks(world, bot, world.mod) == NOT_ALLOWED  # not a helper
    await say(world, "config set", {"key": "allowed_users", "value": f"<@{world.mod}>", "scope": "server"})
    assert await asks(world, bot, world.mod) == answer  # named as a user

    # Blocks win: Bob is a helper, but muted here; the channel's rule adds to the server's.
    await say(world, "config set", {"key": "blocked_roles", "value": str(muted)})
    refusal = await chat_until_done(world, bot, "me too?", user=world.bob)
    assert refusal.ephemeral and refusal.content == NOT_ALLOWED
    await say(world, "config set", {"key": "blocked_users", "value": f"<@{world.alice}>"})
    assert await asks(world, bot, world.alice) == NOT_ALLOWED
    assert len(world.llm.requests) == 2  # refusals never reach the model

    # A mention from someone blocked gets no answer at all (the log says when the bot has decided).
    await world.discord.post_message(world.channel_id, world.bob, f"<@{world.discord.bot_user_id}> hello?")
    await world.discord.wait_for(
        lambda: any(f"Not answering user {world.bob}" in r.getMessage() for r in caplog.records),
        what="the blocked mention decided",
    )
    assert all(m.interaction_id is not None for m in bot_messages(world))  # only the /chat answers
    assert len(world.llm.requests) == 2


async def test_the_most_generous_role_quota_applies(world: World, bot: StreamcordBot) -> None:
    helpers = world.discord.add_role(world.guild_id, "Helpers", [world.alice, world.bob])
    staff = world.discord.add_role(world.guild_id, "Staff", [world.bob])
    await say(world, "config set", {"key": "daily_token_quota", "value": "10", "scope": "server"})
    value = f"<@&{helpers}>=100, <@&{staff}>=none"
    text = await say(world, "config set", {"key": "role_quotas", "value": value, "scope": "server"})
    assert f"`<@&{helpers}>=100, <@&{staff}>=none`" in text

    for user in (world.alice, world.bob, world.mod):
        world.llm.enqueue(Scenario(text="ok", prompt_tokens=150))
        assert await asks(world, bot, user) == "ok"
    # Alice (helper: 100 a day) and Mo (no listed role: daily_token_quota 10) are past their quota; Bob is
    # also staff, which is unlimited.
    for user, quota in ((world.alice, 100), (world.mod, 10)):
        refusal = await asks(world, bot, user)
        assert refusal.startswith(f"You've used your {quota:,} tokens for today on this server.")
    assert await asks(world, bot, world.bob) == Scenario().text
    assert len(world.llm.requests) == 4
