"""Drive the real discord.py client against fakes.discord.FakeDiscord."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import discord
import pytest
import yarl
from discord import app_commands
from discord.ext import commands

from fakes.discord import FLAG_LOADING, MANAGE_MESSAGES, FakeDiscord


@contextlib.asynccontextmanager
async def pointed_at(fake: FakeDiscord) -> AsyncIterator[None]:
    """Point discord.py's REST base and gateway at the fake, restoring both afterwards."""
    old_base, old_gateway = discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    discord.http.Route.BASE = fake.api_base
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)
    try:
        yield
    finally:
        discord.http.Route.BASE = old_base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = old_gateway


def make_bot(*, members: bool = False) -> commands.Bot:
    intents = discord.Intents.default()
    intents.members = members
    # A short guild_ready_timeout keeps on_ready prompt; production keeps discord.py's 2 s default.
    return commands.Bot(command_prefix="!", intents=intents, guild_ready_timeout=0.05)


@contextlib.asynccontextmanager
async def running(
    fake: FakeDiscord, bot: commands.Bot, *, sync_guild: int | None = None
) -> AsyncIterator[commands.Bot]:
    await bot.login(fake.token)
    if sync_guild is not None:
        bot.tree.copy_global_to(guild=discord.Object(sync_guild))
        await bot.tree.sync(guild=discord.Object(sync_guild))
    task = asyncio.create_task(bot.connect())
    try:
        await fake.wait_ready()
        await asyncio.wait_for(bot.wait_until_ready(), 10)
        yield bot
    finally:
        await bot.close()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)


class World:
    def __init__(self, fake: FakeDiscord) -> None:
        self.fake = fake
        self.guild = fake.add_guild()
        self.channel = fake.add_channel(self.guild)
        self.alice = fake.add_user(self.guild, "alice")
        self.mod = fake.add_user(self.guild, "mod", manage_messages=True, manage_guild=True)


@contextlib.asynccontextmanager
async def world(**kwargs: Any) -> AsyncIterator[World]:
    kwargs.setdefault("identify_interval", 0.05)  # restarts identify again at once; sharding tests set it
    async with FakeDiscord(**kwargs) as fake, pointed_at(fake):
        yield World(fake)


@pytest.fixture
async def w() -> AsyncIterator[World]:
    async with world() as w:
        yield w


async def test_ready_populates_guild_cache(w: World) -> None:
    async with running(w.fake, make_bot(members=True)) as bot:
        assert bot.user is not None and bot.user.id == w.fake.bot_user_id
        assert bot.application_id == w.fake.application_id
        guild = bot.get_guild(w.guild)
        assert guild is not None and guild.name == "Test Guild"
        channel = guild.get_channel(w.channel)
        assert isinstance(channel, discord.TextChannel) and channel.name == "general"
        assert {m.id for m in guild.members} == {w.fake.bot_user_id, w.alice, w.mod}
        me_perms = channel.permissions_for(guild.me)
        assert me_perms.send_messages and me_perms.manage_messages and me_perms.add_reactions
        mod = guild.get_member(w.mod)
        assert mod is not None
        assert mod.guild_permissions.manage_messages and mod.guild_permissions.manage_guild
        alice = guild.get_member(w.alice)
        assert alice is not None and not alice.guild_permissions.manage_messages


async def test_without_members_intent_only_bot_member_is_sent(w: World) -> None:
    async with running(w.fake, make_bot()) as bot:
        guild = bot.get_guild(w.guild)
        assert guild is not None and [m.id for m in guild.members] == [w.fake.bot_user_id]


async def test_slash_command_respond_edit_followup(w: World) -> None:
    bot = make_bot()
    seen: dict[str, Any] = {}
    done = asyncio.Event()

    @bot.tree.command(name="ask", description="Ask something")
    async def ask(interaction: discord.Interaction, prompt: str, n: int = 1) -> None:
        seen.update(prompt=prompt, n=n, perms=interaction.permissions.manage_messages)
        await interaction.response.send_message(
            f"thinking about {prompt}", allowed_mentions=discord.AllowedMentions.none()
        )
        await interaction.edit_original_response(content="answer")
        await interaction.followup.send("followup", ephemeral=True)
        done.set()

    group = app_commands.Group(name="config", description="Settings")

    @group.command(name="set", description="Set a value")
    async def config_set(interaction: discord.Interaction, key: str, value: int) -> None:
        seen.update(key=key, value=value)
        await interaction.response.send_message("ok", ephemeral=True)

    bot.tree.add_command(group)
    async with running(w.fake, bot, sync_guild=w.guild):
        assert {c["name"] for c in w.fake.commands} == {"ask", "config"}
        inter = await w.fake.run_slash_command(w.guild, w.channel, w.mod, "ask", {"prompt": "life", "n": 3})
        await asyncio.wait_for(done.wait(), 5)
        assert seen == {"prompt": "life", "n": 3, "perms": True}
        assert inter.response_type == 4 and inter.message_id is not None
        original = w.fake.messages[inter.message_id]
        assert [v.content for v in original.versions] == ["thinking about life", "answer"]
        assert original.versions[0].allowed_mentions == {"parse": []}
        assert original.interaction_id == inter.id and not original.ephemeral
        followup = w.fake.messages[inter.followup_ids[0]]
        assert followup.content == "followup" and followup.ephemeral
        assert followup.created_at > original.versions[-1].at
        assert [m.id for m in w.fake.channel_messages(w.channel)] == [original.id, followup.id]

        cfg = await w.fake.run_slash_command(
            w.guild, w.channel, w.mod, "config set", {"key": "k", "value": "7"}
        )
        await w.fake.wait_for(lambda: cfg.response_type is not None, what="config set response")
        assert seen["key"] == "k" and seen["value"] == 7
        assert w.fake.messages[cfg.message_id].ephemeral  # type: ignore[index]


async def test_defer_then_followup_fills_thinking_message(w: World) -> None:
    bot = make_bot()

    @bot.tree.command(name="slow", description="Deferred")
    async def slow(interaction: discord.Interaction) -> None:
        await interaction.response.defer(thinking=True)
        await interaction.followup.send("done")

    async with running(w.fake, bot, sync_guild=w.guild):
        inter = await w.fake.run_slash_command(w.guild, w.channel, w.alice, "slow")
        await w.fake.wait_for(
            lambda: inter.message_id is not None and len(w.fake.messages[inter.message_id].versions) == 2,
            what="followup",
        )
        msg = w.fake.messages[inter.message_id]  # type: ignore[index]
        assert inter.response_type == 5
        states = [(v.content, v.flags & FLAG_LOADING) for v in msg.versions]
        assert states == [("", FLAG_LOADING), ("done", 0)]
        assert inter.followup_ids == []


async def test_autocomplete_choices_recorded(w: World) -> None:
    bot = make_bot()

    @bot.tree.command(name="model", description="Pick a model")
    async def model(interaction: discord.Interaction, name: str) -> None:
        await interaction.response.send_message(name)

    @model.autocomplete("name")
    async def complete(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        names = [n for n in ("gpt-a", "gpt-b", "other") if n.startswith(current)]
        return [app_commands.Choice(name=n, value=n) for n in names]

    async with running(w.fake, bot, sync_guild=w.guild):
        inter = await w.fake.run_autocomplete(w.guild, w.channel, w.alice, "model", {"name": "gp"}, "name")
        await w.fake.wait_for(lambda: inter.choices is not None, what="autocomplete")
        assert [c["value"] for c in inter.choices or []] == ["gpt-a", "gpt-b"]


async def test_channel_send_edit_delete_and_gateway_echo(w: World) -> None:
    async with running(w.fake, make_bot()) as bot:
        channel = bot.get_channel(w.channel)
        assert isinstance(channel, discord.TextChannel)
        deleted = asyncio.ensure_future(bot.wait_for("raw_message_delete", timeout=5))
        msg = await channel.send(f"hi <@{w.alice}>", allowed_mentions=discord.AllowedMentions(users=False))
        assert msg.mentions == []  # allowed_mentions suppressed the ping
        edited = await msg.edit(
            content=f"edited <@{w.alice}>", allowed_mentions=discord.AllowedMentions(users=True)
        )
        assert [u.id for u in edited.mentions] == [w.alice]
        await msg.delete()
        event = await deleted
        assert event.message_id == msg.id
        record = w.fake.messages[msg.id]
        assert [v.content for v in record.versions] == [f"hi <@{w.alice}>", f"edited <@{w.alice}>"]
        assert record.versions[0].allowed_mentions == {"parse": ["everyone", "roles"], "replied_user": True}
        assert record.versions[1].allowed_mentions is not None
        assert set(record.versions[1].allowed_mentions["parse"]) == {"users", "everyone", "roles"}
        assert record.deleted_at is not None and record.author_id == w.fake.bot_user_id
        assert msg.created_at.timestamp() == pytest.approx(time.time(), abs=5)

        # Files go as multipart with payload_json; a file alone makes a message non-empty.
        with_file = await channel.send(file=discord.File(io.BytesIO(b"hello"), "note.txt"))
        assert w.fake.messages[with_file.id].content == ""
        assert w.fake.requests[-1].json["attachments"][0]["filename"] == "note.txt"


async def test_user_messages_reach_bot_with_message_content_rules(w: World) -> None:
    async with running(w.fake, make_bot()) as bot:
        got: list[discord.Message] = []

        async def on_message(message: discord.Message) -> None:
            got.append(message)

        bot.add_listener(on_message)
        plain = await w.fake.post_message(w.channel, w.alice, "no mention here")
        pinged = await w.fake.post_message(
            w.channel, w.alice, f"<@{w.fake.bot_user_id}> hello", reply_to=plain
        )
        await w.fake.wait_for(lambda: len(got) == 2, what="two on_message events")
        by_id = {m.id: m for m in got}
        # Intents.default() lacks MESSAGE_CONTENT, so like Discord the fake blanks unmentioned content.
        assert by_id[plain].content == ""
        assert by_id[pinged].content == f"<@{w.fake.bot_user_id}> hello"
        assert bot.user in by_id[pinged].mentions
        assert by_id[pinged].reference is not None and by_id[pinged].reference.message_id == plain
        assert w.fake.messages[plain].content == "no mention here"


async def test_validation_errors_surface_as_http_exceptions(w: World) -> None:
    async with running(w.fake, make_bot()) as bot:
        channel = bot.get_channel(w.channel)
        assert isinstance(channel, discord.TextChannel)
        with pytest.raises(discord.HTTPException) as too_long:
            await channel.send("x" * 2001)
        assert (too_long.value.status, too_long.value.code) == (400, 50035)
        assert "content" in too_long.value.text
        with pytest.raises(discord.HTTPException) as empty:
            await channel.send("")
        assert (empty.value.status, empty.value.code) == (400, 50006)
        with pytest.raises(discord.NotFound) as unknown:
            await channel.fetch_message(12345)
        assert unknown.value.code == 10008
        user_msg = await w.fake.post_message(w.channel, w.alice, "mine")
        with pytest.raises(discord.Forbidden) as forbidden:
            await channel.get_partial_message(user_msg).edit(content="hijack")
        assert forbidden.value.code == 50005
        with pytest.raises(discord.NotFound) as no_channel:
            await bot.http.send_message(999, params=discord.http.handle_message_parameters(content="x"))
        assert no_channel.value.code == 10003
        with pytest.raises(discord.NotFound):
            await bot.http.request(discord.http.Route("GET", "/nope/{x}", x=1))
        assert w.fake.unknown_routes == ["GET /nope/1"]
        assert len(w.fake.channel_messages(w.channel)) == 1  # nothing invalid was stored


async def test_rate_limit_429_is_retried_by_discord_py(w: World) -> None:
    w.fake.bucket_limits["message_edit"] = (5, 1.0)  # same shape as Discord's 5/5 s, faster test
    bot = make_bot()
    holder: dict[str, discord.Interaction] = {}

    @bot.tree.command(name="start", description="Start")
    async def start(interaction: discord.Interaction) -> None:
        holder["i"] = interaction
        await interaction.response.send_message("0")

    async with running(w.fake, bot, sync_guild=w.guild):
        inter = await w.fake.run_slash_command(w.guild, w.channel, w.alice, "start")
        await w.fake.wait_for(lambda: inter.message_id is not None, what="interaction response")
        channel = bot.get_channel(w.channel)
        assert isinstance(channel, discord.TextChannel)
        msg = await channel.send("0")
        # Unpaced edits across the channel route and the interaction webhook share one channel budget.
        edits = [msg.edit(content=f"c{i}") for i in range(4)]
        edits += [holder["i"].edit_original_response(content=f"w{i}") for i in range(3)]
        await asyncio.wait_for(asyncio.gather(*edits), 15)
        assert w.fake.count_429() > 0
        assert len(w.fake.messages[msg.id].versions) == 5
        assert len(w.fake.messages[inter.message_id].versions) == 4  # type: ignore[index]
        limited = [r for r in w.fake.requests if r.status == 429]
        assert limited
        assert all("Retry-After" in r.headers and "X-RateLimit-Scope" in r.headers for r in limited)
        ok_edits = [r for r in w.fake.requests if r.method == "PATCH" and r.status == 200]
        assert ok_edits and all(
            {
                "X-RateLimit-Limit",
                "X-RateLimit-Remaining",
                "X-RateLimit-Reset",
                "X-RateLimit-Reset-After",
                "X-RateLimit-Bucket",
            }
            <= r.headers.keys()
            for r in ok_edits
        )
        assert {r.headers["X-RateLimit-Scope"] for r in limited} <= {"user", "shared"}
        # A 429 is not applied: applied writes are exactly the send + 7 edits.
        applied = [
            r
            for r in w.fake.requests
            if r.status == 200 and r.method in ("POST", "PATCH") and "/messages" in r.path
        ]
        assert len(applied) == 1 + 7


async def test_global_rate_limit(w: World) -> None:
    w.fake.global_limit = 3
    async with running(w.fake, make_bot()) as bot:
        before = w.fake.count_429()
        fetches = [bot.fetch_channel(w.channel) for _ in range(6)]
        channels = await asyncio.wait_for(asyncio.gather(*fetches), 10)
        assert all(c.id == w.channel for c in channels)
        limited = [r for r in w.fake.requests if r.status == 429]
        assert w.fake.count_429() > before
        assert any(r.headers.get("X-RateLimit-Global") == "true" for r in limited)


async def test_reactions_both_ways(w: World) -> None:
    async with running(w.fake, make_bot()) as bot:
        channel = bot.get_channel(w.channel)
        assert isinstance(channel, discord.TextChannel)
        msg = await channel.send("react to me")
        await msg.add_reaction("🛑")
        assert w.fake.messages[msg.id].reactions["🛑"] == {w.fake.bot_user_id}
        waiter = asyncio.ensure_future(
            bot.wait_for("raw_reaction_add", check=lambda p: p.user_id == w.alice, timeout=5)
        )
        await w.fake.add_reaction(w.channel, msg.id, w.alice, "🛑")
        payload = await waiter
        assert payload.emoji.name == "🛑" and payload.message_id == msg.id
        assert payload.member is not None and payload.member.id == w.alice
        await msg.remove_reaction("🛑", discord.Object(w.alice))
        assert w.fake.messages[msg.id].reactions["🛑"] == {w.fake.bot_user_id}


async def test_threads_are_seen_with_their_parent_and_used_like_channels(w: World) -> None:
    thread_id = w.fake.add_thread(w.guild, w.channel, "help", owner_id=w.alice)
    # Threads have no overwrites of their own: the parent's deny applies inside the thread too.
    w.fake.set_permission_overwrite(w.channel, w.mod, deny=MANAGE_MESSAGES)
    bot = make_bot(members=True)
    seen: list[tuple[Any, bool]] = []

    @bot.tree.command(name="where", description="Where am I")
    async def where(interaction: discord.Interaction) -> None:
        seen.append((interaction.channel, interaction.permissions.manage_messages))
        await interaction.response.send_message("here")

    async with running(w.fake, bot, sync_guild=w.guild):
        guild = bot.get_guild(w.guild)
        assert guild is not None
        thread = guild.get_channel_or_thread(thread_id)
        assert isinstance(thread, discord.Thread) and thread.name == "help"
        assert thread.parent_id == w.channel and thread.parent is guild.get_channel(w.channel)
        assert thread.owner_id == w.alice and not thread.archived
        assert guild.get_channel(thread_id) is None and [t.id for t in guild.threads] == [thread_id]
        mod = guild.get_member(w.mod)
        assert mod is not None and mod.guild_permissions.manage_messages
        assert not thread.permissions_for(mod).manage_messages
        assert not w.fake.channel_permissions(thread_id, w.mod) & MANAGE_MESSAGES
        assert w.fake.channel_permissions(thread_id, w.alice) == w.fake.permissions(w.guild, w.alice)

        inter = await w.fake.run_slash_command(w.guild, thread_id, w.mod, "where")
        await w.fake.wait_for(lambda: inter.message_id is not None, what="/where answered")
        [(channel, manage_messages)] = seen
        assert isinstance(channel, discord.Thread) and channel.parent_id == w.channel
        assert not manage_messages
        assert w.fake.messages[inter.message_id].channel_id == thread_id  # type: ignore[index]

        heard = asyncio.ensure_future(bot.wait_for("message", check=lambda m: m.author.id == w.alice))
        asked = await w.fake.post_message(thread_id, w.alice, f"<@{w.fake.bot_user_id}> hi")
        message = await asyncio.wait_for(heard, 5)
        assert message.id == asked and message.channel is thread
        sent = await thread.send("hello thread")
        await sent.add_reaction("🛑")
        reacted = asyncio.ensure_future(bot.wait_for("raw_reaction_add", check=lambda p: p.user_id == w.mod))
        await w.fake.add_reaction(thread_id, sent.id, w.mod, "🛑")
        payload = await asyncio.wait_for(reacted, 5)
        assert payload.channel_id == thread_id and guild.get_channel_or_thread(payload.channel_id) is thread
        assert [m.id for m in w.fake.channel_messages(thread_id)] == [inter.message_id, asked, sent.id]
        assert w.fake.channel_messages(w.channel) == []
        assert (await bot.fetch_channel(thread_id)).message_count == 3  # type: ignore[union-attr]

        # A thread started while the bot is connected arrives as THREAD_CREATE.
        created = asyncio.ensure_future(bot.wait_for("thread_create"))
        later = w.fake.add_thread(w.guild, w.channel, "later")
        assert (await asyncio.wait_for(created, 5)).id == later
        cached = guild.get_thread(later)
        assert cached is not None and cached.parent_id == w.channel and cached.name == "later"


async def test_the_bot_opens_threads_and_archived_threads_refuse_posts(w: World) -> None:
    async with running(w.fake, make_bot()) as bot:
        channel = bot.get_channel(w.channel)
        assert isinstance(channel, discord.TextChannel)
        starter = await channel.send("start here")
        created = asyncio.ensure_future(bot.wait_for("thread_create"))
        thread = await channel.create_thread(name="from a message", message=starter)
        assert thread.id == starter.id and thread.owner_id == w.fake.bot_user_id
        assert (await asyncio.wait_for(created, 5)).id == thread.id
        bare = await channel.create_thread(name="without one", type=discord.ChannelType.public_thread)
        assert bare.parent_id == w.channel and bare.id != starter.id
        with pytest.raises(discord.HTTPException) as refused:
            await channel.create_thread(name="again", message=starter)
        assert refused.value.code == 160004

        posted = await thread.send("inside")
        w.fake.archive_thread(thread.id)
        for attempt in (thread.send("more"), posted.edit(content="changed")):
            with pytest.raises(discord.HTTPException) as archived:
                await attempt
            assert (archived.value.status, archived.value.code) == (400, 50083)
        assert w.fake.messages[posted.id].content == "inside"


async def test_ack_deadline_and_token_ttl() -> None:
    async with world(ack_deadline=0.2, token_ttl=0.4) as w:
        bot = make_bot()
        gate = asyncio.Event()
        errors: list[discord.HTTPException] = []
        holder: dict[str, discord.Interaction] = {}

        @bot.tree.command(name="late", description="Responds late")
        async def late(interaction: discord.Interaction) -> None:
            await gate.wait()
            try:
                await interaction.response.send_message("too late")
            except discord.HTTPException as exc:
                errors.append(exc)

        @bot.tree.command(name="quick", description="Responds now")
        async def quick(interaction: discord.Interaction) -> None:
            holder["i"] = interaction
            await interaction.response.send_message("now")

        async with running(w.fake, bot, sync_guild=w.guild):
            slow = await w.fake.run_slash_command(w.guild, w.channel, w.alice, "late")
            fast = await w.fake.run_slash_command(w.guild, w.channel, w.alice, "quick")
            await w.fake.wait_for(lambda: fast.response_type == 4, what="quick response")
            # Waiting for a deadline to pass is the one place a clock wait is inherent.
            await w.fake.wait_for(lambda: time.monotonic() - slow.created_at > 0.2, what="ack deadline")
            gate.set()
            await w.fake.wait_for(lambda: bool(errors), what="late response error")
            assert isinstance(errors[0], discord.NotFound) and errors[0].code == 10062
            assert slow.response_type is None

            # A second callback for an acknowledged interaction is rejected the same way.
            url = f"{w.fake.api_base}/interactions/{fast.id}/{fast.token}/callback"
            async with (
                aiohttp.ClientSession() as http,
                http.post(url, json={"type": 4, "data": {"content": "again"}}) as resp,
            ):
                assert resp.status == 404 and (await resp.json())["code"] == 10062

            await w.fake.wait_for(lambda: time.monotonic() - fast.created_at > 0.4, what="token expiry")
            with pytest.raises(discord.HTTPException) as expired:
                await holder["i"].edit_original_response(content="edit after expiry")
            assert (expired.value.status, expired.value.code) == (401, 50027)


async def test_bot_restart_reidentifies_and_server_survives(w: World) -> None:
    async with running(w.fake, make_bot()):
        pass
    await w.fake.wait_for(lambda: w.fake.connected == 0, what="first socket closed")
    async with running(w.fake, make_bot()) as bot:
        assert w.fake.ready_count == 2
        channel = bot.get_channel(w.channel)
        assert isinstance(channel, discord.TextChannel)
        msg = await channel.send("after restart")
        assert w.fake.messages[msg.id].content == "after restart"


async def test_gateway_resume_replays_missed_events(w: World) -> None:
    async with running(w.fake, make_bot()) as bot:
        resumed = asyncio.ensure_future(bot.wait_for("resumed", timeout=5))
        got = asyncio.ensure_future(bot.wait_for("message", timeout=5))
        # Drop the socket from the server side, like a network blip, and post while it is down.
        for conn in list(w.fake.gateway.conns):
            await conn.ws.close(code=4000)
        mid = await w.fake.post_message(w.channel, w.alice, f"<@{w.fake.bot_user_id}> still there?")
        await resumed
        assert (await got).id == mid  # replayed from the session backlog on RESUME
        await w.fake.wait_ready()
        assert w.fake.ready_count == 2  # initial READY + RESUMED


async def test_bad_token_is_rejected(w: World) -> None:
    bot = make_bot()
    with pytest.raises(discord.LoginFailure):
        await bot.login("not-the-token")
    await bot.close()


@contextlib.asynccontextmanager
async def channel_http(w: World) -> AsyncIterator[tuple[aiohttp.ClientSession, str]]:
    """A plain HTTP client with the bot's token, and the URL of the world's channel's messages."""
    async with aiohttp.ClientSession(headers={"Authorization": f"Bot {w.fake.token}"}) as http:
        yield http, f"{w.fake.api_base}/channels/{w.channel}/messages"


async def test_fixed_window_headers_and_429_shape(w: World) -> None:
    async with channel_http(w) as (http, url):
        seen = []
        for i in range(6):
            async with http.post(url, json={"content": f"m{i}"}) as resp:
                seen.append((resp.status, dict(resp.headers), await resp.json()))
    assert [s for s, _, _ in seen] == [200] * 5 + [429]
    assert [h["X-RateLimit-Remaining"] for _, h, _ in seen[:5]] == ["4", "3", "2", "1", "0"]
    assert len({h["X-RateLimit-Bucket"] for _, h, _ in seen[:5]}) == 1
    assert all(
        h["X-RateLimit-Limit"] == "5" and 0 < float(h["X-RateLimit-Reset-After"]) <= 5 for _, h, _ in seen[:5]
    )
    _, headers, body = seen[5]
    assert headers["X-RateLimit-Scope"] == "user" and "X-RateLimit-Global" not in headers
    assert int(headers["Retry-After"]) >= 1 and headers["Via"]
    assert body["message"] == "You are being rate limited." and body["global"] is False and body["code"] == 0
    assert 0 < body["retry_after"] <= 5
    assert len(w.fake.channel_messages(w.channel)) == 5  # the 429 was not applied
    assert w.fake.count_429() == 1


async def test_creates_and_edits_spend_separate_channel_buckets(w: World) -> None:
    """Discord reports creates and edits as different buckets: five of each fit in one window."""
    async with channel_http(w) as (http, url):
        created = []
        for i in range(5):
            async with http.post(url, json={"content": f"m{i}"}) as resp:
                assert resp.status == 200
                created.append((resp.headers["X-RateLimit-Bucket"], (await resp.json())["id"]))
        edited = []
        for i in range(5):
            async with http.patch(f"{url}/{created[0][1]}", json={"content": f"e{i}"}) as resp:
                assert resp.status == 200
                edited.append(resp.headers["X-RateLimit-Bucket"])
        async with http.patch(f"{url}/{created[0][1]}", json={"content": "one too many"}) as resp:
            assert resp.status == 429
        async with http.post(url, json={"content": "one too many"}) as resp:
            assert resp.status == 429
    assert len({bucket for bucket, _ in created}) == 1 and len(set(edited)) == 1
    assert created[0][0] != edited[0]
    assert w.fake.count_429() == 2


async def test_files_on_every_route_and_user_attachments_on_messages(w: World) -> None:
    bot = make_bot()
    got: dict[str, Any] = {}
    done = asyncio.Event()

    @bot.tree.command(name="read", description="Read a file")
    async def read(interaction: discord.Interaction, file: discord.Attachment) -> None:
        got["option"] = (file.filename, file.size, file.content_type, await file.read())
        await interaction.response.send_message("a", file=discord.File(io.BytesIO(b"one"), "1.md"))
        await interaction.edit_original_response(
            content="b", attachments=[discord.File(io.BytesIO(b"two"), "2.md")]
        )
        follow = await interaction.followup.send("c", wait=True)
        await interaction.followup.edit_message(
            follow.id, content="d", attachments=[discord.File(io.BytesIO(b"three"), "3.md")]
        )
        done.set()

    async with running(w.fake, bot, sync_guild=w.guild):

        async def on_message(message: discord.Message) -> None:
            if message.attachments and not message.author.bot:
                got["message"] = [(a.filename, a.size, await a.read()) for a in message.attachments]

        bot.add_listener(on_message)
        inter = await w.fake.run_slash_command(
            w.guild, w.channel, w.alice, "read", {"file": w.fake.upload("log.txt", b"hello", "text/plain")}
        )
        await asyncio.wait_for(done.wait(), 5)
        assert got["option"] == ("log.txt", 5, "text/plain", b"hello")
        original = w.fake.messages[inter.message_id]  # type: ignore[index]
        assert [[(f.filename, f.data) for f in v.attachments] for v in original.versions] == [
            [("1.md", b"one")],
            [("2.md", b"two")],
        ]
        followup = w.fake.messages[inter.followup_ids[0]]
        assert [[f.data for f in v.attachments] for v in followup.versions] == [[], [b"three"]]

        channel = bot.get_partial_messageable(w.channel)
        sent = await channel.send("e", file=discord.File(io.BytesIO(b"four"), "4.md"))
        await sent.edit(content="f")  # an edit without files keeps them
        assert [f.data for f in w.fake.messages[sent.id].attachments] == [b"four"]
        await sent.edit(content="g", attachments=[discord.File(io.BytesIO(b"five"), "5.md")])
        assert [f.data for f in w.fake.messages[sent.id].attachments] == [b"five"]

        shot = w.fake.upload("shot.png", b"\x89PNG", "image/png", size=3)  # Discord may report any size
        await w.fake.post_message(w.channel, w.alice, f"<@{w.fake.bot_user_id}> look", attachments=[shot])
        await w.fake.wait_for(lambda: "message" in got, what="a message with an attachment")
        assert got["message"] == [("shot.png", 3, b"\x89PNG")]


async def test_files_roles_and_buttons(w: World) -> None:
    """A slash command with a file option and the member's roles; a reply with a file and a button; a
    click on the button updates that reply."""
    bot = make_bot()
    helpers = w.fake.add_role(w.guild, "Helpers", [w.alice])
    seen: dict[str, Any] = {}
    clicked = asyncio.Event()

    class Confirm(discord.ui.View):
        @discord.ui.button(label="Yes", custom_id="yes")
        async def yes(self, interaction: discord.Interaction, _: discord.ui.Button[Confirm]) -> None:
            await interaction.response.edit_message(content="confirmed", view=None)
            clicked.set()

    @bot.tree.command(name="upload", description="Echo a file")
    async def upload(interaction: discord.Interaction, file: discord.Attachment) -> None:
        assert isinstance(interaction.user, discord.Member)
        seen.update(data=await file.read(), name=file.filename, roles={r.id for r in interaction.user.roles})
        await interaction.response.send_message(
            "here", file=discord.File(io.BytesIO(b"\x89PNG echo"), "echo.png"), view=Confirm(), ephemeral=True
        )

    async with running(w.fake, bot, sync_guild=w.guild):
        picked = w.fake.upload("in.json", b'{"a": 1}')
        inter = await w.fake.run_slash_command(w.guild, w.channel, w.alice, "upload", {"file": picked})
        await w.fake.wait_for(lambda: inter.message_id is not None, what="reply")
        assert seen == {"data": b'{"a": 1}', "name": "in.json", "roles": {w.guild, helpers}}
        assert inter.message_id is not None
        reply = w.fake.messages[inter.message_id]
        [attachment] = reply.attachments
        assert (attachment.filename, attachment.data) == ("echo.png", b"\x89PNG echo")
        cdn_url = f"{w.fake.api_base.removesuffix('/api/v10')}/attachments/{attachment.id}/echo.png"
        async with aiohttp.ClientSession() as http, http.get(cdn_url) as cdn:
            assert await cdn.read() == b"\x89PNG echo"
        assert reply.components and reply.components[0]["components"][0]["custom_id"] == "yes"
        with pytest.raises(LookupError):
            await w.fake.click(reply.id, w.alice, "no")
        await w.fake.click(reply.id, w.alice, "yes")
        await asyncio.wait_for(clicked.wait(), 5)
        await w.fake.wait_for(lambda: reply.content == "confirmed", what="update")
        assert reply.components == [] and reply.attachments == [attachment]


async def test_gateway_outage_until_it_is_up(w: World) -> None:
    async with running(w.fake, make_bot()) as bot:
        ready_before = w.fake.ready_count
        await w.fake.gateway_down()
        await w.fake.wait_for(lambda: not bot.ws.open, what="the bot saw its connection drop")
        assert w.fake.connected == 0
        w.fake.gateway_up()
        await w.fake.wait_for(lambda: w.fake.ready_count > ready_before, timeout=20, what="reconnected")
        assert bot.ws is not None and bot.ws.open


# --- gateway sharding --------------------------------------------------------------------------------


async def _identify(
    fake: FakeDiscord, http: aiohttp.ClientSession, shard: list[int], opened: list[Any] | None = None
) -> dict[str, Any]:
    """Open a raw gateway connection (kept in `opened`), IDENTIFY as `shard`, and return the first frame
    after HELLO, or the close code."""
    ws = await http.ws_connect(fake.gateway_url)
    if opened is not None:
        opened.append(ws)
    await ws.receive_json()  # HELLO
    identify = {"token": fake.token, "intents": 513, "shard": shard, "properties": {}}
    await ws.send_json({"op": 2, "d": identify})
    frame = await ws.receive()
    return {"close": ws.close_code} if frame.type is aiohttp.WSMsgType.CLOSE else json.loads(frame.data)


async def test_gateway_bot_reports_shards_and_session_start_limit() -> None:
    async with world(shards=4, max_concurrency=2) as w, aiohttp.ClientSession() as http:
        auth = {"Authorization": f"Bot {w.fake.token}"}
        async with http.get(f"{w.fake.api_base}/gateway/bot", headers=auth) as resp:
            before = await resp.json()
        assert before["shards"] == 4 and before["url"] == w.fake.gateway_url
        limit = before["session_start_limit"]
        assert limit["max_concurrency"] == 2 and limit["reset_after"] > 0
        assert limit["total"] == limit["remaining"]
        assert (await _identify(w.fake, http, [0, 4]))["t"] == "READY"
        async with http.get(f"{w.fake.api_base}/gateway/bot", headers=auth) as resp:
            after = await resp.json()
        assert after["session_start_limit"]["remaining"] == limit["remaining"] - 1


async def test_identify_is_checked_per_shard_and_rate_limited_per_bucket() -> None:
    async with world(shards=4, max_concurrency=2, identify_interval=30) as w, aiohttp.ClientSession() as http:
        opened: list[Any] = []
        ready = await _identify(w.fake, http, [0, 4], opened)
        assert ready["t"] == "READY" and ready["d"]["shard"] == [0, 4]
        assert (await _identify(w.fake, http, [1, 4], opened))["t"] == "READY"  # bucket 1: its own turn
        too_soon = await _identify(w.fake, http, [2, 4])  # bucket 0 again within the interval
        assert too_soon == {"op": 9, "d": False, "s": None, "t": None}
        assert w.fake.identify_violations == 1
        assert (await _identify(w.fake, http, [4, 4]))["close"] == 4010  # out of range
        assert (await _identify(w.fake, http, [0, 4]))["op"] == 9  # shard 0 is connected already
        assert w.fake.invalid_sessions == 2
        await w.fake.wait_for(lambda: w.fake.ready_shards() == [(0, 4), (1, 4)], what="shards 0 and 1 ready")


async def test_each_shard_gets_its_own_guilds_and_their_events() -> None:
    async with world(shards=2) as w:
        other = w.fake.add_guild("Other", shard=(1, 2))
        other_channel = w.fake.add_channel(other)
        carol = w.fake.add_user(other, "carol")
        home = w.fake.add_guild("Home", shard=(0, 2))
        home_channel = w.fake.add_channel(home)
        dave = w.fake.add_user(home, "dave")
        bots = [
            commands.AutoShardedBot(
                command_prefix="!", intents=discord.Intents.default(), shard_count=2, shard_ids=[i]
            )
            for i in (0, 1)
        ]
        async with contextlib.AsyncExitStack() as stack:
            for bot in bots:
                await stack.enter_async_context(running(w.fake, bot))
            assert w.fake.ready_shards() == [(0, 2), (1, 2)] and w.fake.identify_violations == 0
            # (guild_id >> 22) % 2; the fixture's guild lands wherever its timestamp puts it.
            assert {g.id for g in bots[0].guilds} == {g for g in (w.guild, home) if (g >> 22) % 2 == 0}
            assert {g.id for g in bots[1].guilds} == {other} | {w.guild} - {g.id for g in bots[0].guilds}
            got = [asyncio.ensure_future(bot.wait_for("message", timeout=5)) for bot in bots]
            mention = f"<@{w.fake.bot_user_id}> hi"
            first = await w.fake.post_message(other_channel, carol, mention)
            second = await w.fake.post_message(home_channel, dave, mention)
            # Shard 0 was sent nothing of the other guild: its first message is its own guild's.
            assert [(await g).id for g in got] == [second, first]
            dm = w.fake.add_dm_channel(carol)
            direct = [asyncio.ensure_future(bot.wait_for("message", timeout=5)) for bot in bots]
            dm_id = await w.fake.post_message(dm, carol, "hello")
            assert (await direct[0]).id == dm_id  # DMs reach shard 0
            last = await w.fake.post_message(other_channel, carol, mention)
            assert (await direct[1]).id == last  # shard 1 never saw the DM
