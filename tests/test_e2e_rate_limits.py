"""Discord's rate limits end to end: the bot sends nothing Discord refuses with a 429 except a request
that only another client's spending could make fail, and then not a second one."""

from __future__ import annotations

import asyncio

import pytest

from bot import client as bot_client
from bot.client import StreamcordBot
from fakes.llm_server import Scenario
from tests.e2e import LONG, STORY, World, chat, running_bot, wait_final, wait_idle


async def test_a_429_on_an_interaction_edit_holds_the_whole_channel_and_starts_no_cascade(
    world: World, bot: StreamcordBot
) -> None:
    """Another client spent the channel's edit budget: the next interaction edit there gets a 429, which
    discord.py waits out and sends again. That retry spends the channel's budget too (its webhook path names
    no channel), and the channel's other edits wait with it: no second 429."""
    for _ in range(2):
        world.llm.enqueue(Scenario(text=LONG, tokens_per_second=50))
    replies = [await chat(world, "one"), await chat(world, "two")]
    messages = [world.discord.messages[r] for r in replies]
    await world.discord.wait_for(
        lambda: all(len(m.versions) >= 2 for m in messages), what="both answers streaming"
    )
    world.discord.spend_channel_edits(world.channel_id)
    await world.discord.wait_for(lambda: world.discord.count_429() >= 1, what="the edit refused")
    for reply in replies:
        await wait_final(world, reply)
    await wait_idle(world, bot)
    assert [m.content for m in messages] == [LONG, LONG]
    assert world.discord.count_429() == 1


async def test_edits_queued_while_a_slow_interaction_response_is_out_spend_the_channel_budget(
    world: World, bot: StreamcordBot
) -> None:
    """Discord answers slowly: text arrives while the interaction response is still out, so the next edit
    is queued before the reply exists. It must be paced as the edit it will be (it spends the channel's
    edits), not as the response it was queued behind: four answers in one channel, no 429."""
    world.discord.latency = 0.5
    users = [world.alice, world.bob, world.mod, world.admin]
    for _ in users:
        world.llm.enqueue(Scenario(text=LONG, tokens_per_second=40))
    replies = [await chat(world, f"q{i}", user=user) for i, user in enumerate(users)]
    for reply in replies:
        await wait_final(world, reply)
    await wait_idle(world, bot)
    assert [world.discord.messages[r].content for r in replies] == [LONG] * len(users)
    assert world.discord.count_429() == 0


async def test_a_restarted_bot_waits_out_the_windows_its_previous_process_may_have_spent(
    world: World,
) -> None:
    """Discord's windows outlive the process: one that just answered may have spent the channel's edits
    right before it stopped, and its successor can't know how many. The successor of a busy process holds
    its channel writes for one window."""
    async with running_bot(world) as bot:
        world.llm.enqueue(Scenario(text=STORY))
        reply = await chat(world, "one")
        await wait_final(world, reply)
        await wait_idle(world, bot)
    world.discord.spend_channel_edits(world.channel_id)  # what its last edits may have used
    async with running_bot(world) as bot:
        world.llm.enqueue(Scenario(text=LONG, tokens_per_second=40))
        reply = await chat(world, "two")
        await wait_final(world, reply)
        await wait_idle(world, bot)
    assert world.discord.messages[reply].content == LONG
    assert world.discord.count_429() == 0


async def test_a_burst_of_chats_behind_a_slow_discord_shares_a_bounded_pool_of_connections(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """discord.py's own pool is unlimited, so a burst of /chat would open a socket per acknowledgement. The
    bot's pool is bounded: every answer is acknowledged and shown in full, never more requests at once
    than it has connections."""
    monkeypatch.setattr(bot_client, "REST_CONNECTIONS", 3)
    world.discord.latency = 0.3
    channels = [world.discord.add_channel(world.guild_id, f"burst-{i}") for i in range(8)]
    for _ in channels:
        world.llm.enqueue(Scenario(text=STORY))
    async with running_bot(world, MAX_STREAMS_PER_USER="8") as bot:
        replies = await asyncio.gather(*(chat(world, "tell me", channel=c) for c in channels))
        for reply in replies:
            await wait_final(world, reply)
        await wait_idle(world, bot)
    assert [world.discord.messages[r].content for r in replies] == [STORY] * len(channels)
    assert world.discord.peak_in_flight <= 3
