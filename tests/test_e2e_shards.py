"""The bot sharded (SHARD_COUNT, SHARD_IDS) against the loopback Discord's gateway sharding."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from bot.shards import shard_of
from tests.e2e import (
    ROOT,
    STOP,
    World,
    assert_stopped,
    bot_process,
    chat,
    healthz,
    inflight_message_ids,
    running_bot,
    slow,
    wait_final,
    wait_stop_button,
)


async def test_a_process_streams_and_stops_in_the_servers_of_its_shards(world: World) -> None:
    elsewhere = world.discord.add_guild("On shard 1", shard=(1, 2))
    async with running_bot(world, SHARD_COUNT="2", SHARD_IDS="0") as bot:
        assert world.discord.ready_shards() == [(0, 2)]
        assert {g.id for g in bot.guilds} == {world.guild_id}  # not `elsewhere`: shard 1 is another's
        assert {c["name"] for c in world.discord.commands} >= {"chat"}  # shard 0's process syncs
        world.llm.enqueue(slow())
        message_id = await chat(world, "count")
        await wait_stop_button(world, message_id)
        await world.discord.add_reaction(world.channel_id, message_id, world.alice, STOP)
        await assert_stopped(world, bot, message_id, "⏹ stopped by Alice")
    assert world.discord.identify_violations == 0 and elsewhere not in {g.id for g in bot.guilds}


async def test_a_process_without_shard_0_does_not_sync_commands(world: World) -> None:
    elsewhere = world.discord.add_guild("On shard 1", shard=(1, 2))
    async with running_bot(world, guild=elsewhere, SHARD_COUNT="2", SHARD_IDS="1"):
        assert world.discord.ready_shards() == [(1, 2)]
    assert world.discord.commands == []


async def test_shards_of_one_bucket_identify_five_seconds_apart(world: World) -> None:
    world.discord.identify_interval = 5.0  # Discord's; max_concurrency 1: every shard in one bucket
    async with running_bot(world, SHARD_COUNT="2"):
        await world.discord.wait_for(
            lambda: world.discord.ready_shards() == [(0, 2), (1, 2)], timeout=15, what="both shards ready"
        )
    assert world.discord.identify_violations == 0 and world.discord.invalid_sessions == 0


async def test_sync_subcommand_syncs_whatever_shards_the_process_runs(world: World) -> None:
    env = os.environ | world.env(SHARD_COUNT="4", SHARD_IDS="3")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "sync", env=env, cwd=ROOT, stdin=asyncio.subprocess.DEVNULL
    )
    assert await asyncio.wait_for(process.wait(), 30) == 0
    assert {c["name"] for c in world.discord.commands} >= {"chat", "stop", "config", "usage"}
    assert world.discord.ready_shards() == []  # it never connected to the gateway


async def test_healthz_names_a_shard_that_is_down(world: World) -> None:
    world.discord.max_concurrency = 2  # the two shards identify at once
    world.discord.add_guild("On shard 1", shard=(1, 2))
    async with running_bot(world, SHARD_COUNT="2", METRICS_PORT="0") as bot:
        await world.discord.wait_for(
            lambda: world.discord.ready_shards() == [(0, 2), (1, 2)], what="both shards ready"
        )
        await world.discord.wait_for(lambda: bot.gateway_problem() is None, what="both shards open")
        assert await healthz(bot) == (200, "ok\n")
        await world.discord.gateway_down(shards=[1])
        await world.discord.wait_for(lambda: bot.gateway_problem() is not None, what="the bot saw shard 1 go")
        assert await healthz(bot) == (503, "gateway disconnected: shard 1\n")
        assert world.discord.ready_shards() == [(0, 2)]  # shard 0 stayed connected all along
        world.discord.gateway_up()
        await world.discord.wait_for(
            lambda: bot.gateway_problem() is None, timeout=30, what="shard 1 back on the gateway"
        )
        assert await healthz(bot) == (200, "ok\n")


async def test_recovery_after_a_crash_touches_only_the_servers_of_its_shards(
    world: World, tmp_path: Path
) -> None:
    mine = shard_of(world.guild_id, 2)
    other = world.discord.add_guild("On the other shard", shard=(1 - mine, 2))
    other_channel = world.discord.add_channel(other)
    bea = world.discord.add_user(other, "Bea")
    world.llm.enqueue(slow())
    world.llm.enqueue(slow())
    # One unsharded process answers in both servers, then dies; the other server's reply is the older one,
    # so recovery meets it first if it looked at every server.
    async with bot_process(world, tmp_path / "bot.log") as process:
        asked = await world.discord.run_slash_command(other, other_channel, bea, "chat", {"prompt": "count"})
        await world.discord.wait_for(lambda: asked.message_id is not None, what="/chat answered")
        assert asked.message_id is not None
        theirs = asked.message_id
        await wait_stop_button(world, theirs)
        ours = await chat(world, "count")
        await wait_stop_button(world, ours)
        await world.discord.wait_for(
            lambda: sorted(inflight_message_ids(world.db_path)) == sorted([theirs, ours]), what="recorded"
        )
        process.kill()
        await process.wait()

    async with running_bot(world, SHARD_COUNT="2", SHARD_IDS=str(mine)):
        await wait_final(world, ours, lambda content: "interrupted" in content)
        await world.discord.wait_for(
            lambda: inflight_message_ids(world.db_path) == [theirs], what="our orphan closed"
        )
    left = world.discord.messages[theirs]
    assert left.content.endswith("▌") and not any("interrupted" in v.content for v in left.versions)
