"""What the end-to-end tests share: the world they run in, the real bot running against it, acting as its
users (/chat, mentions, other commands, the CLI), and reading back what those users (and operators) saw.

The pytest fixtures built on these (``world``, ``bot``, ``db``) live in conftest.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import discord
import numpy as np
from matplotlib import colors
from matplotlib import image as mpimg
from prometheus_client.parser import text_string_to_metric_families

from bot.client import StreamcordBot, open_bot
from bot.config import load_config
from bot.db import Database
from bot.store.usage import AnswerStart, UsageStore
from bot.streaming.render import MARKER
from fakes import bot_env
from fakes.discord import FLAG_LOADING, FakeAttachment, FakeDiscord, FakeMessage
from fakes.llm_server import FakeLLM, Scenario, tokenize

ROOT = Path(__file__).resolve().parent.parent
STORY = " ".join(f"word{i}" for i in range(60)) + "."
LONG = " ".join(f"t{i}" for i in range(400))
STOP = "🛑"
# The /usage chart's default colour cycle: the biggest model is stacked first (C0), the next one on top (C1).
BLUE, ORANGE = (np.array(colors.to_rgb(c)) for c in ("C0", "C1"))
# Every variable the bot reads; CLI subprocesses start from an environment without any of them.
_KNOBS = frozenset(
    "DISCORD_TOKEN OPENAI_API_KEY OPENAI_BASE_URL DEFAULT_MODEL DATABASE_PATH LOG_LEVEL DISCORD_API_BASE"
    " DISCORD_GATEWAY_URL SYSTEM_PROMPT TEMPERATURE MAX_TOKENS HISTORY_TURNS COOLDOWN_SECONDS"
    " DAILY_TOKEN_QUOTA LLM_TIMEOUT LLM_MAX_RETRIES DISCORD_GLOBAL_RATE_LIMIT PRICES_FILE"
    " USAGE_RETENTION_DAYS METRICS_PORT METRICS_HOST LLM_DEADLINE MAX_REPLY_PAGES"
    " MAX_CONCURRENT_STREAMS DISCORD_REST_PROXY SHARD_COUNT SHARD_IDS DATABASE_URL LLM_RETRY_BUDGET"
    " LLM_CIRCUIT_FAILURES LLM_CIRCUIT_COOLDOWN".split()
)


def slow() -> Scenario:
    """An answer long and slow enough to stop mid-stream."""
    return Scenario(text=LONG, tokens_per_second=25)


# --- the world and the bot ------------------------------------------------------------------------------


@dataclass
class World:
    discord: FakeDiscord
    llm: FakeLLM
    guild_id: int
    channel_id: int
    alice: int  # asks questions
    bob: int  # another member, no special permissions
    mod: int  # Manage Messages
    admin: int  # Manage Server
    db_path: Path

    def env(self, **overrides: str) -> dict[str, str]:
        env = {
            **bot_env(self.discord, self.llm),
            "DATABASE_PATH": str(self.db_path),
            "LLM_MAX_RETRIES": "0",
            "LLM_TIMEOUT": "5",
        }
        env.update(overrides)
        return env


@contextlib.asynccontextmanager
async def running_bot(world: World, *, guild: int | None = None, **env: str) -> AsyncIterator[StreamcordBot]:
    """The real bot, assembled exactly as `python -m bot` does, connected to the loopback servers; ready
    once it has `guild` (the world's unless told) in its cache."""
    config = load_config(world.env(**env), env_file=os.devnull)
    saved = discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    try:
        async with open_bot(config) as bot:
            task = asyncio.create_task(bot.start(config.discord_token))
            try:
                await world.discord.wait_ready()
                # Not wait_until_ready(): discord.py holds READY back 2 s for guild chunking.
                await world.discord.wait_for(
                    lambda: bot.get_guild(guild or world.guild_id) is not None, what="guild cached"
                )
                yield bot
            finally:
                await bot.close()
                await task
    finally:
        discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = saved


async def healthz(bot: StreamcordBot) -> tuple[int, str]:
    """What the bot's /healthz answers (it runs with METRICS_PORT=0): status and text."""
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{bot.metrics_port}/healthz") as r:
        return r.status, await r.text()


@contextlib.asynccontextmanager
async def bot_process(world: World, log_path: Path, **env: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """`python -m bot` as a separate process, for signals and crashes; its log goes to log_path."""
    ready_before = world.discord.ready_count
    with log_path.open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            env={**os.environ, **world.env(**env)},
            cwd=log_path.parent,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
    try:
        await world.discord.wait_for(
            lambda: world.discord.ready_count > ready_before or process.returncode is not None,
            timeout=30,
            what="bot process connected",
        )
        if process.returncode is not None:
            raise AssertionError(f"the bot exited with {process.returncode}; see {log_path}")
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def add_row(
    db: Database, at: datetime, user_id: int, channel_id: int, guild_id: int, tokens: int
) -> None:
    """A finished request recorded at ``at`` (the store's clock is the only way to backdate one)."""
    store = UsageStore(db, clock=lambda: at)
    request_id = f"old-{at.isoformat()}-{user_id}"
    await store.start([AnswerStart(request_id, guild_id, channel_id, user_id, "fake-model")])
    await store.finish(
        request_id,
        status="completed",
        prompt_tokens=tokens,
        completion_tokens=0,
        estimated=False,
        ttft_ms=10,
        duration_ms=20,
    )


def run_cli(*args: str, cwd: Path = ROOT, **env: str) -> subprocess.CompletedProcess[str]:
    """`python -m bot ARGS` with only the given environment variables of the bot's own set."""
    clean = {k: v for k, v in os.environ.items() if k not in _KNOBS}
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=cwd,
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


# --- acting as users ------------------------------------------------------------------------------------


async def chat(world: World, prompt: str, user: int | None = None, *, channel: int | None = None) -> int:
    """Run /chat as a user (Alice unless told, in the world's channel unless told) and return the id of
    the reply's first message once the interaction is answered."""
    interaction = await world.discord.run_slash_command(
        world.guild_id, channel or world.channel_id, user or world.alice, "chat", {"prompt": prompt}
    )
    await world.discord.wait_for(lambda: interaction.message_id is not None, what="interaction response")
    assert interaction.message_id is not None
    return interaction.message_id


async def command(
    world: World,
    name: str,
    options: dict[str, Any] | None = None,
    *,
    user: int | None = None,
    channel: int | None = None,
) -> FakeMessage:
    """Run a slash command (as the admin unless told) and return its reply once final (not "thinking…")."""
    interaction = await world.discord.run_slash_command(
        world.guild_id, channel or world.channel_id, user or world.admin, name, options or {}
    )

    def answered() -> bool:
        if interaction.message_id is None:
            return False
        return not world.discord.messages[interaction.message_id].flags & FLAG_LOADING

    await world.discord.wait_for(answered, what=f"/{name} answered")
    assert interaction.message_id is not None
    return world.discord.messages[interaction.message_id]


async def mention(
    world: World,
    text: str,
    *,
    user: int | None = None,
    channel: int | None = None,
    reply_to: int | None = None,
    attachments: list[FakeAttachment] | None = None,
) -> int:
    """Post a message that mentions the bot (as Alice unless told, in the world's channel unless told);
    returns its id at once."""
    return await world.discord.post_message(
        channel or world.channel_id,
        user or world.alice,
        f"<@{world.discord.bot_user_id}> {text}",
        reply_to=reply_to,
        attachments=attachments,
    )


async def ask(world: World, text: str, *, reply_to: int | None = None) -> int:
    """Mention the bot with a question as Alice; the id of its reply once there is one."""
    return await first_reply(world, await mention(world, text, reply_to=reply_to))


async def chat_until_done(
    world: World, bot: StreamcordBot, prompt: str, *, user: int | None = None, channel: int | None = None
) -> FakeMessage:
    """/chat, then wait until the answer's usage is recorded; returns the reply (or the refusal)."""
    reply = await command(world, "chat", {"prompt": prompt}, user=user or world.alice, channel=channel)
    await wait_idle(world, bot, timeout=15)
    return reply


async def usage(world: World, options: dict[str, Any] | None = None, *, user: int) -> FakeMessage:
    """/usage show as ``user``; its reply once final."""
    return await command(world, "usage show", options, user=user)


async def asks(world: World, bot: StreamcordBot, user: int, prompt: str = "may I?") -> str:
    """What /chat answers this user once the answer is over: the refusal, or the answer's text."""
    return (await chat_until_done(world, bot, prompt, user=user)).content


async def say(world: World, name: str, options: dict[str, Any] | None = None, **who: int) -> str:
    """The text of a command's reply, which must be ephemeral."""
    reply = await command(world, name, options, **who)
    assert reply.ephemeral, reply.content
    return reply.content


# --- waiting for the bot --------------------------------------------------------------------------------


async def wait_final(world: World, message_id: int, predicate: Callable[[str], bool] | None = None) -> None:
    """Until the message shows no cursor (and its content satisfies `predicate`)."""
    message = world.discord.messages[message_id]
    await world.discord.wait_for(
        lambda: not message.content.endswith("▌") and (predicate is None or predicate(message.content)),
        timeout=20,
        what=f"final version of message {message_id}",
    )


def inflight_message_ids(db_path: Path) -> list[int]:
    """The pages of every reply the SQLite database at ``db_path`` has in flight."""
    with sqlite3.connect(db_path) as conn:
        rows = conn.execute("SELECT message_ids FROM inflight").fetchall()
    return [i for (ids,) in rows for i in json.loads(ids or "[]")]


async def first_reply(world: World, message_id: int) -> int:
    """The id of the bot's reply to a message, once it exists (there must be only one)."""
    await world.discord.wait_for(
        lambda: any(m.reference_id == message_id for m in world.discord.messages.values()),
        what=f"a reply to {message_id}",
    )
    [reply] = [m for m in world.discord.messages.values() if m.reference_id == message_id]
    return reply.id


async def finished(world: World, bot: StreamcordBot, message_id: int) -> str:
    """The message's final content, once its answer is over and its usage recorded."""
    await wait_final(world, message_id)
    await wait_idle(world, bot, timeout=20)
    return world.discord.messages[message_id].content


async def answers(world: World, bot: StreamcordBot, count: int) -> list[str]:
    """The contents of the bot's messages once ``count`` exist and no answer is being written."""
    await world.discord.wait_for(
        lambda: len(bot_messages(world)) >= count and len(bot.streams) == 0, timeout=20, what="answers"
    )
    return [m.content for m in bot_messages(world)]


async def wait_stop_button(world: World, message_id: int) -> None:
    message = world.discord.messages[message_id]
    await world.discord.wait_for(
        lambda: world.discord.bot_user_id in message.reactions.get(STOP, set()) and "t3" in message.content,
        what="stop button on a streaming reply",
    )


async def wait_idle(world: World, bot: StreamcordBot, timeout: float = 10.0) -> None:
    await world.discord.wait_for(
        lambda: len(bot.streams) == 0, timeout, what="every answer finished and recorded"
    )


# --- what users saw -------------------------------------------------------------------------------------


def bot_messages(world: World, channel_id: int | None = None) -> list[FakeMessage]:
    """The bot's visible (non-ephemeral) messages in a channel, oldest first."""
    return [
        m
        for m in world.discord.channel_messages(channel_id or world.channel_id)
        if m.author_id == world.discord.bot_user_id and not m.ephemeral
    ]


def without_marker(content: str) -> str:
    return content.removesuffix(MARKER).removesuffix(" ")


def assert_grew_monotonically(message: FakeMessage, final_text: str) -> None:
    """Every version showed a prefix of the final text, each at least as long as the one before."""
    shown = [without_marker(v.content) for v in message.versions]
    for before, after in itertools.pairwise(shown):
        assert after.startswith(before), (before, after)
    assert all(final_text.startswith(s) for s in shown)


def assert_no_pings(world: World) -> None:
    """Every message version the bot sent or edited had mentions disabled."""
    for message in world.discord.messages.values():
        if message.author_id != world.discord.bot_user_id:
            continue
        for version in message.versions:
            allowed = version.allowed_mentions or {}
            assert allowed.get("parse") == [], (message.id, version)
            assert not allowed.get("users") and not allowed.get("roles"), (message.id, version)


async def assert_stopped(world: World, bot: StreamcordBot, message_id: int, footer: str) -> None:
    """Upstream closed, the reply finalised with the text so far plus the footer, nothing edited after,
    the stop button gone, and the usage row closed as stopped."""
    request = world.llm.requests[-1]
    await world.llm.wait_for(lambda: request.disconnected_at is not None, what="upstream connection closed")
    assert request.finished_at is None and request.tokens_after_disconnect == 0
    await wait_final(world, message_id, lambda content: content.endswith(footer))
    await wait_idle(world, bot)
    message = world.discord.messages[message_id]
    assert message.versions[-1].content.endswith(footer)
    assert sum(footer in v.content for v in message.versions) == 1, "no edits after the final one"
    text = message.content.removesuffix(footer).rstrip("\n")
    assert text and request.text_sent.startswith(text)
    assert world.discord.bot_user_id not in message.reactions.get(STOP, set())
    [row] = await usage_rows(bot.db)
    # Estimated from what the bot received: the server may have written a token the bot never read.
    assert (row["status"], row["estimated"], row["completion_tokens"]) == ("stopped", 1, len(tokenize(text)))
    assert row["completion_tokens"] <= request.tokens_sent


async def usage_rows(db: Database) -> list[dict[str, Any]]:
    return [dict(r) for r in await db.fetchall("SELECT * FROM usage ORDER BY id")]


async def overrides(bot: StreamcordBot) -> list[tuple[str, int, str, str]]:
    """The settings table, as (scope, scope id, key, JSON value) rows."""
    rows = await bot.db.fetchall("SELECT scope, scope_id, key, value FROM settings ORDER BY scope, key")
    return [tuple(row) for row in rows]


def embed_of(reply: FakeMessage) -> dict[str, Any]:
    """The /usage answer as {"title": ..., field name: field value}; it must be ephemeral."""
    assert reply.ephemeral
    [embed] = reply.embeds
    return {"title": embed["title"]} | {f["name"]: f["value"] for f in embed.get("fields", [])}


def decode(png: bytes) -> np.ndarray:
    """A /usage chart's RGB pixels."""
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    return mpimg.imread(io.BytesIO(png), format="png")[:, :, :3]


def pixels_of(picture: np.ndarray, colour: np.ndarray) -> int:
    return int(np.all(np.abs(picture - colour) < 0.02, axis=-1).sum())


# --- what operators saw ---------------------------------------------------------------------------------


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """A Prometheus scrape as {(name, sorted labels): value}."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
