"""/config end to end, and settings taking effect on /chat: real discord.py against the loopback servers."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from bot.client import StreamcordBot
from bot.db import load_migrations
from bot.db.sqlite import MIGRATIONS_DIR
from bot.settings import KEYS
from fakes.llm_server import Scenario
from tests.e2e import (
    ROOT,
    World,
    bot_messages,
    chat_until_done,
    command,
    overrides,
    run_cli,
    running_bot,
    say,
    usage_rows,
    wait_idle,
)

NEEDS_MANAGE_SERVER = "You need the Manage Server permission"


async def autocomplete(
    world: World, user: int, options: dict[str, Any], focused: str, name: str = "config set"
) -> list[dict[str, Any]]:
    interaction = await world.discord.run_autocomplete(
        world.guild_id, world.channel_id, user, name, options, focused
    )
    await world.discord.wait_for(lambda: interaction.choices is not None, what="autocomplete choices")
    assert interaction.choices is not None
    return interaction.choices


# --- /config --------------------------------------------------------------------------------------------


async def test_set_show_reset_and_history(world: World, bot: StreamcordBot) -> None:
    channel, guild = world.channel_id, world.guild_id
    assert await say(world, "config history") == "No settings have been changed in this server yet."

    text = await say(world, "config set", {"key": "temperature", "value": "1.2"})
    assert text == "Set `temperature` to `1.2` for this channel (was not set)."
    text = await say(world, "config set", {"key": "Temperature", "value": "0.3"})
    assert text == "Set `temperature` to `0.3` for this channel (was `1.2`)."
    text = await say(world, "config set", {"key": "history", "value": "4", "scope": "server"})
    assert text == "Set `history` to `4` for the whole server (was not set)."
    text = await say(world, "config set", {"key": "enabled", "value": "yes", "scope": "server"})
    assert "`enabled` to `on`" in text
    assert await overrides(bot) == [
        ("channel", channel, "temperature", "0.3"),
        ("guild", guild, "enabled", "true"),
        ("guild", guild, "history", "4"),
    ]

    shown = (await say(world, "config show")).splitlines()
    assert "`temperature` = `0.3` (channel)" in shown
    assert "`history` = `4` (server)" in shown
    assert "`model` = `fake-model` (default)" in shown
    assert len(shown) == 1 + len(KEYS)  # heading + every key
    heading, *listed = (await say(world, "config show", {"scope": "server"})).splitlines()
    assert heading == "**Overrides for the whole server:**"
    assert sorted(listed) == ["`enabled` = `on`", "`history` = `4`"]

    # One key at one scope; the server value shows through afterwards.
    await say(world, "config set", {"key": "history", "value": "9"})
    text = await say(world, "config reset", {"key": "history"})
    assert text == "Reset for this channel:\n`history` (was `9`, now `4` here)"
    text = await say(world, "config reset", {"key": "history"})
    assert text == "Nothing to reset: `history` isn't overridden for this channel."
    # Everything at one scope.
    heading, *listed = (await say(world, "config reset", {"scope": "server"})).splitlines()
    assert heading == "Reset for the whole server:"
    assert sorted(listed) == ["`enabled` (was `on`, now `on` here)", "`history` (was `4`, now `10` here)"]
    assert await overrides(bot) == [("channel", channel, "temperature", "0.3")]
    assert (
        await say(world, "config show", {"scope": "server"})
        == "No settings are overridden for the whole server."
    )

    reply = await command(world, "config history")
    assert reply.ephemeral and not reply.mentions  # names people without pinging them
    history = reply.content.splitlines()
    assert history[0] == "**Recent changes** (newest first):"
    assert len(history) == 1 + 8  # every change above, resets included
    assert history[1].endswith(f"<@{world.admin}> `history` (server): `4` → reset")
    assert history[3].endswith(f"<@{world.admin}> `history` (<#{channel}>): `9` → reset")
    assert history[-2].endswith(f"`temperature` (<#{channel}>): `1.2` → `0.3`")
    assert history[-1].endswith(f"`temperature` (<#{channel}>): unset → `1.2`")


@pytest.mark.parametrize("user", ["bob", "mod"])
async def test_only_manage_server_may_use_config(world: World, bot: StreamcordBot, user: str) -> None:
    """default_permissions only hides /config in the client; the bot itself must refuse."""
    who = getattr(world, user)
    await say(world, "config set", {"key": "enabled", "value": "on"})
    for name, options in [
        ("config set", {"key": "enabled", "value": "off"}),
        ("config set", {"key": "model", "value": "fake-model-mini", "scope": "server"}),
        ("config reset", {}),
        ("config show", {}),
        ("config history", {}),
    ]:
        text = await say(world, name, options, user=who)
        assert text.startswith(NEEDS_MANAGE_SERVER), (name, text)
    assert await overrides(bot) == [("channel", world.channel_id, "enabled", "true")]
    assert len(await bot.settings.history(world.guild_id)) == 1
    # Autocomplete runs no checks: it must not leak the model list either.
    assert await autocomplete(world, who, {"key": "model", "value": ""}, "value") == []


@pytest.mark.parametrize(
    ("key", "value", "error"),
    [
        ("colour", "blue", "Unknown setting `colour`. Valid settings: model, system_prompt, temperature"),
        ("temperature", "3", "temperature must be between 0 and 2"),
        ("temperature", "warm", "temperature must be a number between 0 and 2"),
        ("max_tokens", "0", "max_tokens must be a whole number from 1 to 32768, or none"),
        ("enabled", "maybe", "enabled must be on or off"),
        (
            "model",
            "gpt-9",
            "The model server has no model `gpt-9`. Available: `fake-model`, `fake-model-mini`",
        ),
    ],
    ids=["unknown-key", "temperature-too-high", "temperature-not-a-number", "max-tokens", "enabled", "model"],
)
async def test_invalid_values_are_refused_clearly(
    world: World, bot: StreamcordBot, key: str, value: str, error: str
) -> None:
    text = await say(world, "config set", {"key": key, "value": value})
    assert text.startswith(error), text
    assert await overrides(bot) == []
    assert await bot.settings.history(world.guild_id) == []


async def test_reset_of_an_unknown_key_is_refused(world: World, bot: StreamcordBot) -> None:
    text = await say(world, "config reset", {"key": "colour"})
    assert text.startswith("Unknown setting `colour`.")


async def test_model_is_checked_against_the_servers_list(world: World, bot: StreamcordBot) -> None:
    # Deferred while the model list loads, then the "thinking…" message becomes the answer.
    reply = await command(world, "config set", {"key": "model", "value": "fake-model-mini"})
    assert reply.ephemeral
    assert reply.content == "Set `model` to `fake-model-mini` for this channel (was not set)."
    assert await overrides(bot) == [("channel", world.channel_id, "model", '"fake-model-mini"')]


async def test_model_is_stored_unchecked_when_the_server_cannot_list_models(
    world: World, bot: StreamcordBot
) -> None:
    world.llm.api_key = "sk-rotated"  # the listing now fails with 401
    text = await say(world, "config set", {"key": "model", "value": "my-finetune"})
    assert text == (
        "Set `model` to `my-finetune` for this channel (was not set)."
        " (the model server did not list its models, so the name is unchecked)"
    )
    assert await overrides(bot) == [("channel", world.channel_id, "model", '"my-finetune"')]


async def test_key_and_model_autocomplete(world: World, bot: StreamcordBot) -> None:
    choices = await autocomplete(world, world.admin, {"key": "temp"}, "key")
    assert [c["value"] for c in choices] == ["temperature"]
    assert choices[0]["name"].startswith("temperature: Sampling temperature")
    everything = await autocomplete(world, world.admin, {"key": ""}, "key")
    assert [c["value"] for c in everything] == list(KEYS)
    assert all(len(c["name"]) <= 100 for c in everything)
    reset = await autocomplete(world, world.admin, {"key": "daily"}, "key", name="config reset")
    assert [c["value"] for c in reset] == ["daily_token_quota"]

    models = await autocomplete(world, world.admin, {"key": "model", "value": ""}, "value")
    assert [c["value"] for c in models] == ["fake-model", "fake-model-mini"]
    world.llm.models.append("other-model-mini")  # cached: the list is not fetched per keystroke
    models = await autocomplete(world, world.admin, {"key": "model", "value": "MINI"}, "value")
    assert [c["value"] for c in models] == ["fake-model-mini"]
    toggles = await autocomplete(world, world.admin, {"key": "enabled", "value": ""}, "value")
    assert [c["value"] for c in toggles] == ["on", "off"]


# --- settings take effect on /chat ----------------------------------------------------------------------


async def test_channel_settings_shape_the_model_request(world: World) -> None:
    other = world.discord.add_channel(world.guild_id, "random")
    async with running_bot(world) as bot:
        for options in [
            {"key": "model", "value": "fake-model-mini", "scope": "server"},
            {"key": "temperature", "value": "0.2", "scope": "server"},
            {"key": "system_prompt", "value": "Answer like a pirate.", "scope": "server"},
            {"key": "temperature", "value": "1.5"},
            {"key": "max_tokens", "value": "256"},
            {"key": "system_prompt", "value": "Answer in French."},
        ]:
            assert (await say(world, "config set", options)).startswith("Set ")

        await chat_until_done(world, bot, "hello here")
        await chat_until_done(world, bot, "hello there", channel=other)

    here, there = (r.body for r in world.llm.requests)
    assert here["model"] == "fake-model-mini"  # from the server
    assert here["temperature"] == 1.5  # the channel beats the server
    assert here["max_tokens"] == 256
    assert here["messages"] == [
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "hello here", "name": "Alice"},
    ]
    assert there["model"] == "fake-model-mini"
    assert there["temperature"] == 0.2
    assert there["max_tokens"] == 1024  # the bot's default (MAX_TOKENS)
    assert there["messages"][0] == {"role": "system", "content": "Answer like a pirate."}


async def test_max_tokens_none_and_empty_system_prompt(world: World, bot: StreamcordBot) -> None:
    await say(world, "config set", {"key": "max_tokens", "value": "none"})
    await say(world, "config set", {"key": "system_prompt", "value": " "})
    await chat_until_done(world, bot, "hi")
    body = world.llm.requests[0].body
    assert body.get("max_tokens") is None
    assert body["messages"] == [{"role": "user", "content": "hi", "name": "Alice"}]


async def test_disabled_channel_refuses_without_asking_the_model(world: World, bot: StreamcordBot) -> None:
    await say(world, "config set", {"key": "enabled", "value": "off"})
    refusal = await chat_until_done(world, bot, "are you there?")
    assert refusal.ephemeral
    assert refusal.content.startswith("I'm switched off in this channel.")
    assert len(refusal.content) < 200
    # A mention there gets no answer at all (no public refusal on every mention), and no model request;
    # a later command answered shows the bot has handled the mention by then.
    await world.discord.post_message(world.channel_id, world.alice, f"<@{world.discord.bot_user_id}> hello?")
    await say(world, "config show", {})
    assert bot_messages(world) == []
    assert world.llm.requests == []
    assert await usage_rows(bot.db) == []

    # A channel "on" beats a server "off".
    await say(world, "config reset", {})
    await say(world, "config set", {"key": "enabled", "value": "off", "scope": "server"})
    await say(world, "config set", {"key": "enabled", "value": "on"})
    reply = await chat_until_done(world, bot, "and now?")
    assert not reply.ephemeral and reply.content == Scenario().text
    assert len(world.llm.requests) == 1


async def test_cooldown_refuses_the_second_request(world: World, bot: StreamcordBot) -> None:
    await say(world, "config set", {"key": "cooldown_seconds", "value": "600", "scope": "server"})
    first = await chat_until_done(world, bot, "one")
    assert first.content == Scenario().text
    refusal = await chat_until_done(world, bot, "two")
    assert refusal.ephemeral
    assert refusal.content.startswith("Slow down a little: you can ask again in ")
    assert len(world.llm.requests) == 1
    # The cooldown is per user.
    other = await chat_until_done(world, bot, "three", user=world.bob)
    assert other.content == Scenario().text
    assert len(world.llm.requests) == 2


async def test_cooldown_holds_for_back_to_back_requests(world: World, bot: StreamcordBot) -> None:
    await say(world, "config set", {"key": "cooldown_seconds", "value": "600"})
    first = await world.discord.run_slash_command(
        world.guild_id, world.channel_id, world.alice, "chat", {"prompt": "one"}
    )
    second = await world.discord.run_slash_command(
        world.guild_id, world.channel_id, world.alice, "chat", {"prompt": "two"}
    )
    await world.discord.wait_for(
        lambda: first.message_id is not None and second.message_id is not None, what="both answered"
    )
    await wait_idle(world, bot)
    assert len(world.llm.requests) == 1


async def test_daily_token_quota_refuses_once_spent(world: World, bot: StreamcordBot) -> None:
    await say(world, "config set", {"key": "daily_token_quota", "value": "50", "scope": "server"})
    world.llm.enqueue(Scenario(text="short answer", prompt_tokens=30))
    await chat_until_done(world, bot, "first")
    world.llm.enqueue(Scenario(text="another short answer", prompt_tokens=30))
    await chat_until_done(world, bot, "second")  # 32 of 50 spent: still allowed, may overshoot
    refusal = await chat_until_done(world, bot, "third")
    assert refusal.ephemeral
    assert refusal.content == (
        "You've used your 50 tokens for today on this server. The quota resets at 00:00 UTC."
    )
    assert len(world.llm.requests) == 2
    # Raising the quota lets the user in again.
    await say(world, "config set", {"key": "daily_token_quota", "value": "none", "scope": "server"})
    assert not (await chat_until_done(world, bot, "fourth")).ephemeral
    assert len(world.llm.requests) == 3


async def test_settings_survive_a_restart(world: World) -> None:
    async with running_bot(world):
        await say(world, "config set", {"key": "model", "value": "fake-model-mini"})
        await say(world, "config set", {"key": "temperature", "value": "0.1", "scope": "server"})
    async with running_bot(world) as bot:
        shown = (await say(world, "config show")).splitlines()
        assert "`model` = `fake-model-mini` (channel)" in shown
        assert "`temperature` = `0.1` (server)" in shown
        await chat_until_done(world, bot, "still there?")
        assert len(await bot.settings.history(world.guild_id)) == 2
    [request] = world.llm.requests
    assert request.body["model"] == "fake-model-mini"
    assert request.body["temperature"] == 0.1


# --- the command line -----------------------------------------------------------------------------------


def test_migrate_check_then_migrate(tmp_path: Path) -> None:
    db = tmp_path / "data" / "streamcord.sqlite3"
    files = [m.filename for m in load_migrations(MIGRATIONS_DIR)]
    check = run_cli("migrate", "--check", DATABASE_PATH=str(db))
    assert check.returncode == 1, check
    assert "applied: 0 (latest: none)" in check.stdout
    assert [f"pending: {name}" for name in files] == [
        line for line in check.stdout.splitlines() if line.startswith("pending: ")
    ]
    assert not db.exists(), "--check must not create the database"

    migrate = run_cli("migrate", DATABASE_PATH=str(db))
    assert migrate.returncode == 0, migrate
    assert migrate.stdout.splitlines() == [
        *(f"applied: {name}" for name in files),
        f"database {db} is up to date ({len(files)} migration(s) applied)",
    ]
    again = run_cli("migrate", DATABASE_PATH=str(db))
    assert again.returncode == 0 and "(0 migration(s) applied)" in again.stdout

    check = run_cli("migrate", "--check", DATABASE_PATH=str(db))
    assert check.returncode == 0, check
    assert f"applied: {len(files)} (latest: {files[-1].removesuffix('.sql')})" in check.stdout
    assert check.stdout.rstrip().endswith("up to date")

    with contextlib.closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1")
    for args in (("migrate", "--check"), ("migrate",)):
        broken = run_cli(*args, DATABASE_PATH=str(db))
        assert broken.returncode == 2, broken
        assert "0001_init.sql was changed after it was applied" in broken.stdout
        assert "Traceback" not in broken.stderr


def test_missing_discord_token_is_named_without_a_traceback(tmp_path: Path) -> None:
    # Run outside the checkout so a developer's own .env (which could hold a real token) is not read.
    result = run_cli(
        cwd=tmp_path,
        PYTHONPATH=str(ROOT),
        DEFAULT_MODEL="fake-model",
        DATABASE_PATH=str(tmp_path / "db.sqlite3"),
    )
    assert result.returncode == 2
    assert result.stdout == ""
    message = result.stderr.strip()
    assert "DISCORD_TOKEN" in message
    assert "\n" not in message
    assert "Traceback" not in message
    assert not (tmp_path / "db.sqlite3").exists()
