"""Usage accounting end to end: rows match what the model server reported, /usage, and the CSV export."""

from __future__ import annotations

import csv
import io
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.client import StreamcordBot
from bot.db import DatabaseLocation, open_database
from bot.store.usage import CSV_COLUMNS
from fakes.llm_server import Scenario
from tests.e2e import (
    World,
    add_row,
    chat_until_done,
    command,
    embed_of,
    run_cli,
    running_bot,
    usage,
    usage_rows,
)
from tests.postgres import env_for

NEEDS_MANAGE_SERVER = (
    "You need the Manage Server permission to see usage for other people, channels or the server."
)


# --- the rows -------------------------------------------------------------------------------------------


async def test_rows_match_the_usage_the_server_reported(world: World, bot: StreamcordBot) -> None:
    world.llm.enqueue(Scenario(text="Four score and seven years ago.", prompt_tokens=123))
    await chat_until_done(world, bot, "Quote Lincoln")
    world.llm.enqueue(Scenario(text="No prompt count given: the fake counts it."))
    await chat_until_done(world, bot, "Say something", user=world.bob)

    first, second = world.llm.requests
    assert first.usage_sent and second.usage_sent
    rows = await usage_rows(bot.db)
    assert [(r["prompt_tokens"], r["completion_tokens"], r["estimated"]) for r in rows] == [
        (123, first.tokens_sent, 0),
        # 3 priming + (3 + words) per message: the system prompt and the question.
        (3 + 3 + len(second.body["messages"][0]["content"].split()) + 3 + 2, second.tokens_sent, 0),
    ]
    assert [(r["user_id"], r["channel_id"], r["guild_id"]) for r in rows] == [
        (world.alice, world.channel_id, world.guild_id),
        (world.bob, world.channel_id, world.guild_id),
    ]
    for row in rows:
        assert row["status"] == "completed" and row["model"] == "fake-model" and row["error"] is None
        assert row["finished_at"] >= row["started_at"]
        assert 0 <= row["ttft_ms"] <= row["duration_ms"]


async def test_row_is_estimated_when_the_server_sends_no_usage(world: World, bot: StreamcordBot) -> None:
    world.llm.enqueue(Scenario(text="Counted by the bot, not the server.", send_usage=False))
    await chat_until_done(world, bot, "hello")
    [request] = world.llm.requests
    assert not request.usage_sent
    [row] = await usage_rows(bot.db)
    assert row["estimated"] == 1
    assert row["status"] == "completed"
    assert row["completion_tokens"] == request.tokens_sent  # one token per streamed delta
    prompt_chars = sum(len(m["content"]) for m in request.body["messages"])
    assert row["prompt_tokens"] == math.ceil(prompt_chars / 4)

    summary = embed_of(await usage(world, user=world.alice))
    assert "≈ 1 request(s) have estimated counts" in summary["Tokens"]


# --- /usage ---------------------------------------------------------------------------------------------


async def test_usage_for_yourself(world: World, bot: StreamcordBot) -> None:
    empty = embed_of(await usage(world, user=world.alice))
    assert empty == {
        "title": "Your usage, today (UTC)",
        "Requests": "0",
        "Tokens": "0 (0 prompt + 0 completion)",
        "Cost": "0.00 USD",
    }

    world.llm.enqueue(Scenario(text="one two three", prompt_tokens=1000))
    await chat_until_done(world, bot, "a")
    world.llm.enqueue(Scenario(text="four five", prompt_tokens=500))
    await chat_until_done(world, bot, "b")
    world.llm.enqueue(Scenario(text="bob's", prompt_tokens=7))
    await chat_until_done(world, bot, "c", user=world.bob)
    # Ten days ago: outside today and 7d, inside 30d and all.
    await add_row(
        bot.db, datetime.now(UTC) - timedelta(days=10), world.alice, world.channel_id, world.guild_id, 40
    )

    mine = embed_of(await usage(world, user=world.alice))
    assert mine == {
        "title": "Your usage, today (UTC)",
        "Requests": "2 (2 completed)",
        "Tokens": "1,505 (1,500 prompt + 5 completion)",
        "Cost": "0.00 USD\nNo price for `fake-model`: counted as free",
    }
    assert embed_of(await usage(world, {"period": "7d"}, user=world.alice))["Requests"] == "2 (2 completed)"
    month = embed_of(await usage(world, {"period": "30d"}, user=world.alice))
    assert month["title"] == "Your usage, the last 30 days"
    assert month["Tokens"] == "1,545 (1,540 prompt + 5 completion)"
    assert embed_of(await usage(world, {"period": "all"}, user=world.alice))["Requests"] == "3 (3 completed)"

    # Naming yourself needs no permission.
    bobs = embed_of(await usage(world, {"user": world.bob}, user=world.bob))
    assert bobs["title"] == "Your usage, today (UTC)"
    assert bobs["Tokens"] == "8 (7 prompt + 1 completion)"
    assert "Top users" not in bobs


@pytest.mark.parametrize(
    "options",
    [{"scope": "server"}, {"scope": "channel"}, {"user": "alice"}, {"scope": "me", "user": "admin"}],
    ids=["server", "channel", "other-user", "other-user-scope-me"],
)
async def test_others_usage_needs_manage_server(
    world: World, bot: StreamcordBot, options: dict[str, Any]
) -> None:
    if "user" in options:
        options = options | {"user": getattr(world, options["user"])}
    for who in (world.bob, world.mod):
        reply = await usage(world, options, user=who)
        assert reply.ephemeral
        assert reply.content == NEEDS_MANAGE_SERVER
        assert not reply.embeds


async def test_admin_sees_server_channel_and_member_usage(world: World) -> None:
    other = world.discord.add_channel(world.guild_id, "random")
    async with running_bot(world) as bot:
        world.llm.enqueue(Scenario(text="a b c", prompt_tokens=100))
        await chat_until_done(world, bot, "1")
        world.llm.enqueue(Scenario(text="d e", prompt_tokens=300))
        await chat_until_done(world, bot, "2", user=world.bob)
        world.llm.enqueue(Scenario(text="f", prompt_tokens=50, send_usage=False))
        await chat_until_done(world, bot, "3", user=world.bob, channel=other)
        world.llm.enqueue(Scenario(text="g h i j", prompt_tokens=10))
        await chat_until_done(world, bot, "4", user=world.mod, channel=other)
        estimated_prompt = (await usage_rows(bot.db))[2]["prompt_tokens"]

        server = embed_of(await usage(world, {"scope": "server"}, user=world.admin))
        prompt = 100 + 300 + estimated_prompt + 10
        assert server["title"] == "Usage in this server, today (UTC)"
        assert server["Requests"] == "4 (4 completed)"
        assert server["Tokens"] == (
            f"{prompt + 10:,} ({prompt:,} prompt + 10 completion)\n≈ 1 request(s) have estimated counts"
        )
        assert server["Top users"].splitlines() == [
            f"1. <@{world.bob}>: {300 + 2 + estimated_prompt + 1:,} tokens",
            f"2. <@{world.alice}>: 103 tokens",
            f"3. <@{world.mod}>: 14 tokens",
        ]

        channel = embed_of(await usage(world, {"scope": "channel"}, user=world.admin))
        assert channel["title"] == "Usage in this channel, today (UTC)"
        assert channel["Tokens"] == "405 (400 prompt + 5 completion)"
        assert channel["Top users"].splitlines() == [
            f"1. <@{world.bob}>: 302 tokens",
            f"2. <@{world.alice}>: 103 tokens",
        ]

        member = embed_of(await usage(world, {"user": world.bob, "scope": "server"}, user=world.admin))
        assert member["title"] == "Usage by Bob, today (UTC)"
        assert member["Requests"] == "2 (2 completed)"
        assert "Top users" not in member
        in_channel = embed_of(await usage(world, {"user": world.bob, "scope": "channel"}, user=world.admin))
        assert in_channel["title"] == "Usage by Bob in this channel, today (UTC)"
        assert in_channel["Tokens"] == "302 (300 prompt + 2 completion)"

    # The mention-free reply: ids in the embed never ping.
    for message in world.discord.messages.values():
        if message.embeds:
            assert not message.mentions and not message.mention_everyone


async def test_admin_sees_usage_of_someone_who_left(world: World, bot: StreamcordBot) -> None:
    """Their tokens still count in the server's totals, so the admin must be able to look them up."""
    elsewhere = world.discord.add_guild("Elsewhere")
    former = world.discord.add_user(elsewhere, "Eve")  # known to Discord, not a member here any more
    await add_row(bot.db, datetime.now(UTC), former, world.channel_id, world.guild_id, 70)
    theirs = embed_of(await usage(world, {"user": former}, user=world.admin))
    assert theirs["title"] == "Usage by Eve, today (UTC)"
    assert theirs["Tokens"] == "70 (70 prompt + 0 completion)"


async def test_usage_and_quota_survive_a_restart(world: World) -> None:
    async with running_bot(world) as bot:
        await command(world, "config set", {"key": "daily_token_quota", "value": "100", "scope": "server"})
        world.llm.enqueue(Scenario(text="expensive answer", prompt_tokens=150))
        await chat_until_done(world, bot, "first")
    async with running_bot(world) as bot:
        mine = embed_of(await usage(world, user=world.alice))
        assert mine["Tokens"] == "152 (150 prompt + 2 completion)"
        refusal = await chat_until_done(world, bot, "second")
        assert refusal.ephemeral and refusal.content.startswith("You've used your 100 tokens for today")
    assert len(world.llm.requests) == 1


# --- usage-export ---------------------------------------------------------------------------------------


async def test_usage_export_writes_csv_since_a_date(db_location: DatabaseLocation) -> None:
    db = await open_database(db_location)
    try:
        for day, user in (
            (datetime(2025, 1, 9, 23, 59, tzinfo=UTC), 1),
            (datetime(2025, 1, 10, tzinfo=UTC), 2),
        ):
            await add_row(db, day, user, channel_id=20, guild_id=30, tokens=user * 100)
    finally:
        await db.close()

    result = run_cli("usage-export", "--since", "2025-01-10", **env_for(db_location))
    assert result.returncode == 0, result
    assert result.stderr.strip().splitlines()[-1] == "1 rows"
    [header, *rows] = list(csv.reader(io.StringIO(result.stdout)))
    assert tuple(header) == CSV_COLUMNS
    assert len(rows) == 1
    row = dict(zip(header, rows[0], strict=True))
    assert row["user_id"] == "2" and row["guild_id"] == "30" and row["channel_id"] == "20"
    assert (row["prompt_tokens"], row["completion_tokens"], row["estimated"]) == ("200", "0", "0")
    assert row["status"] == "completed" and row["started_at"] == "2025-01-10T00:00:00.000000Z"

    everything = run_cli("usage-export", "--since", "2025-01-01", **env_for(db_location))
    assert everything.returncode == 0
    assert len(list(csv.reader(io.StringIO(everything.stdout)))) == 3

    bad = run_cli("usage-export", "--since", "last week", **env_for(db_location))
    assert bad.returncode == 2
    assert "--since" in bad.stderr and "Traceback" not in bad.stderr


def test_usage_export_refuses_a_database_that_is_not_migrated(tmp_path: Path) -> None:
    path = tmp_path / "never-opened.sqlite3"
    result = run_cli("usage-export", "--since", "2025-01-01", DATABASE_PATH=str(path))
    assert result.returncode == 2
    assert "migrate --check" in result.stderr and "Traceback" not in result.stderr
    assert not path.exists(), "an export must not change the database"
