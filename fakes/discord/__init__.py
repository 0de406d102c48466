"""A loopback fake of Discord (REST /api/v10 + gateway websocket) for driving the real discord.py client.

It keeps just enough server-side state (guilds, channels, public threads, direct-message channels, per-channel
permission overwrites, members, messages, interactions, application commands) to answer what discord.py 2.7
asks for, and records every request and every message version for assertions.

What it enforces, as Discord does:
- Messages: at most 2,000 characters of content and 10 embeds, never empty (400 with Discord's error
  body); replies to an unknown message fail unless ``fail_if_not_exists`` is false; the bot edits only its
  own messages; ephemeral messages exist only for their interaction's webhook; an archived thread refuses
  posts and edits (400 50083).
- Interactions: the callback must come within ``ack_deadline`` seconds (default 3) and only once, else 404
  "Unknown interaction"; the webhook token works for ``token_ttl`` seconds (default 900), then 401; the
  first followup after a deferred "thinking" response becomes that response.
- Rate limits (``rate_limits=True``): fixed windows per bucket, 5 message creates and, separately, 5 edits
  or deletes per 5 s per channel (each shared with interaction webhook writes of that kind to it; the two
  report different ``X-RateLimit-Bucket`` hashes), 5 per 5 s per webhook token and route, 1 reaction per
  0.25 s per channel, 50 per second for other routes, and ``global_limit`` requests per second across all
  but interaction routes; answers carry Discord's ``X-RateLimit-*`` headers, and a 429 its body and
  ``Retry-After``, consuming nothing.
- Auth: a bot token on REST (401 otherwise) and in IDENTIFY (close 4004); RESUME of an unknown session: op 9.
- Gateway: events go only to sessions with the intents for them; others' message content is blanked
  without MESSAGE_CONTENT (unless the bot is mentioned or it is a DM). ``gateway_down()`` is an outage:
  connections (all, or those of some shards) drop and new ones get 503 until ``gateway_up()``.
- Files: the bot's uploads are kept (``FakeMessage.attachments``) and, like files a user picks for an
  attachment option (``upload()``), served at ``/attachments/{id}/{filename}`` (``cdn_delay`` seconds late,
  for a slow CDN; ``cdn_served`` counts the files sent); buttons the bot sends can be
  pressed (``click()``), and an UPDATE_MESSAGE callback edits the message they are on.
- Sharding (sharding.py): ``GET /gateway/bot`` reports ``shards`` and ``session_start_limit``; IDENTIFY's
  ``[shard_id, shard_count]`` is checked (close 4010), one session per shard, one IDENTIFY per
  ``identify_interval`` s (Discord: 5) per bucket ``shard_id % max_concurrency`` (op 9 otherwise, counted
  in ``identify_violations``); READY, GUILD_CREATE and every guild's events reach only its shard
  (``(guild_id >> 22) % shard_count``; DMs shard 0). ``add_guild(shard=(i, n))`` places a guild on a shard.

The parts: state.py (the tables), world.py, messages.py and commands.py (changing them; changes.py is what
they share), payloads.py (JSON shapes), gateway.py with sharding.py, ratelimits.py, and rest.py with the
routes by resource in rest_app.py, rest_channels.py, rest_threads.py and rest_interactions.py.
:class:`FakeDiscord` wires them together and is all that tests and the bench use.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection
from typing import Any, Generic, TypeVar

from aiohttp import web

from fakes.discord.commands import INTERACTION_AUTOCOMPLETE, INTERACTION_COMMAND, Commands
from fakes.discord.gateway import Gateway
from fakes.discord.messages import Messages
from fakes.discord.model import (
    FLAG_EPHEMERAL,
    FLAG_LOADING,
    MANAGE_GUILD,
    MANAGE_MESSAGES,
    SEND_MESSAGES,
    VIEW_CHANNEL,
    FakeAttachment,
    FakeInteraction,
    FakeMessage,
    MessageVersion,
    RequestRecord,
)
from fakes.discord.payloads import Payloads
from fakes.discord.ratelimits import RateLimiter
from fakes.discord.rest import RestServer
from fakes.discord.rest_app import AppRoutes
from fakes.discord.rest_channels import ChannelRoutes
from fakes.discord.rest_interactions import InteractionRoutes
from fakes.discord.rest_threads import ThreadRoutes
from fakes.discord.state import State
from fakes.discord.world import World
from fakes.loopback import LoopbackServer

__all__ = [
    "FLAG_EPHEMERAL",
    "FLAG_LOADING",
    "MANAGE_GUILD",
    "MANAGE_MESSAGES",
    "SEND_MESSAGES",
    "VIEW_CHANNEL",
    "FakeAttachment",
    "FakeDiscord",
    "FakeInteraction",
    "FakeMessage",
    "MessageVersion",
    "RequestRecord",
]

log = logging.getLogger(__name__)

T = TypeVar("T")


class _Part(Generic[T]):
    """An attribute of the facade that lives on one of its parts, read and written through."""

    def __init__(self, part: str) -> None:
        self._part = part
        self._name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    def __get__(self, obj: Any, owner: type | None = None) -> T:
        value: T = getattr(getattr(obj, self._part), self._name)
        return value

    def __set__(self, obj: Any, value: T) -> None:
        setattr(getattr(obj, self._part), self._name, value)


class FakeDiscord(LoopbackServer):
    """Fake Discord HTTP API + gateway on 127.0.0.1; see the module docstring."""

    token = _Part[str]("state")
    application_id = _Part[int]("state")
    bot_user_id = _Part[int]("state")
    messages = _Part[dict[int, FakeMessage]]("state")
    interactions = _Part[dict[int, FakeInteraction]]("state")
    commands = _Part[list[dict[str, Any]]]("state")
    global_limit = _Part[int]("limiter")
    bucket_limits = _Part[dict[str, tuple[int, float]]]("limiter")
    rate_limits = _Part[bool]("rest")
    latency = _Part[float]("rest")
    requests = _Part[list[RequestRecord]]("rest")
    peak_in_flight = _Part[int]("rest")  # most REST requests being answered at once
    unknown_routes = _Part[list[str]]("rest")
    ack_deadline = _Part[float]("_interaction_routes")
    token_ttl = _Part[float]("_interaction_routes")
    enforce_message_content_intent = _Part[bool]("gateway")
    ready_count = _Part[int]("gateway")  # READY+GUILD_CREATEs fully written, across all connections
    connected = _Part[int]("gateway")  # open connections that have received READY (or RESUMED)
    invalid_sessions = _Part[int]("gateway")  # op 9 sent, for any reason
    shards = _Part[int]("sharding")
    max_concurrency = _Part[int]("sharding")
    identify_interval = _Part[float]("sharding")

    def __init__(
        self,
        *,
        rate_limits: bool = True,
        global_limit: int = 50,
        token_ttl: float = 900.0,
        ack_deadline: float = 3.0,
        latency: float = 0.0,
        shards: int = 1,
        max_concurrency: int = 1,
        identify_interval: float = 5.0,
    ) -> None:
        super().__init__()
        self.port = 0
        self.cdn_delay = 0.0  # seconds the CDN takes before answering
        self.cdn_served = 0  # files the CDN has sent
        self._runner: web.AppRunner | None = None
        self.state = State()
        payloads = Payloads(self.state)
        self.gateway = Gateway(self.state, payloads, lambda: self.gateway_url, self._changed)
        self.sharding = self.gateway.sharding
        self.shards, self.max_concurrency, self.identify_interval = shards, max_concurrency, identify_interval
        self.world = World(self.state, payloads, self.gateway, self._changed)
        self._messages = Messages(self.state, payloads, self.gateway, self._changed)
        self._commands = Commands(self.state, payloads, self.gateway, self._changed)
        self.limiter = RateLimiter(global_limit, self._interaction_channel)
        self._interaction_routes = InteractionRoutes(
            self.state, payloads, self._messages, ack_deadline=ack_deadline, token_ttl=token_ttl
        )
        routes = [
            *AppRoutes(
                self.state, payloads, self._commands, lambda: self.gateway_url, self.sharding
            ).routes(),
            *ChannelRoutes(self.state, payloads, self._messages).routes(),
            *ThreadRoutes(self.state, payloads, self.world).routes(),
            *self._interaction_routes.routes(),
        ]
        self.rest = RestServer(
            self.state, self.limiter, routes, self._changed, rate_limits=rate_limits, latency=latency
        )

    def _interaction_channel(self, token: str) -> int | None:
        inter = self.state.interactions_by_token.get(token)
        return None if inter is None else inter.channel_id

    # ----------------------------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        app = web.Application(client_max_size=32 * 1024 * 1024)
        app.router.add_get("/gateway", self.gateway.handle)
        app.router.add_route("*", "/api/v10/{tail:.*}", self.rest.handle)
        app.router.add_get("/attachments/{attachment_id}/{filename}", self._cdn)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = self._runner.addresses[0][1]
        self.state.cdn_base = f"http://127.0.0.1:{self.port}/attachments"
        log.info("fake discord listening on %s", self.api_base)

    async def close(self) -> None:
        await self.gateway.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _cdn(self, request: web.Request) -> web.Response:
        """Discord's CDN for attachments: the bytes of any file the fake holds."""
        attachment_id = request.match_info["attachment_id"]
        attachment = self.state.uploads.get(int(attachment_id)) if attachment_id.isdigit() else None
        if attachment is None or attachment.filename != request.match_info["filename"]:
            return web.Response(status=404)
        await asyncio.sleep(self.cdn_delay)
        self.cdn_served += 1
        self._changed()
        # As a header: aiohttp's content_type argument refuses a charset parameter ("text/plain; charset=…").
        return web.Response(body=attachment.data, headers={"Content-Type": attachment.content_type})

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    async def wait_ready(self, timeout: float = 10.0) -> None:
        """Wait until a currently connected bot has IDENTIFYed and received READY + all GUILD_CREATEs."""
        await self.wait_for(
            lambda: self.connected > 0, timeout, "a bot to IDENTIFY and receive READY + GUILD_CREATE"
        )

    # ----------------------------------------------------------------------------------- world setup

    def add_guild(self, name: str = "Test Guild", *, shard: tuple[int, int] | None = None) -> int:
        return self.world.add_guild(name, shard=shard)

    def add_channel(self, guild_id: int, name: str = "general") -> int:
        return self.world.add_channel(guild_id, name)

    def add_thread(
        self, guild_id: int, parent_id: int, name: str = "a thread", *, owner_id: int | None = None
    ) -> int:
        return self.world.add_thread(guild_id, parent_id, name, owner_id=owner_id)

    def archive_thread(self, thread_id: int) -> None:
        self.world.archive_thread(thread_id)

    def add_dm_channel(self, user_id: int) -> int:
        return self.world.add_dm_channel(user_id)

    def add_user(
        self, guild_id: int, name: str, *, manage_messages: bool = False, manage_guild: bool = False
    ) -> int:
        return self.world.add_user(guild_id, name, manage_messages=manage_messages, manage_guild=manage_guild)

    def set_permission_overwrite(
        self, channel_id: int, target_id: int, *, allow: int = 0, deny: int = 0
    ) -> None:
        self.world.set_permission_overwrite(channel_id, target_id, allow=allow, deny=deny)

    def add_role(self, guild_id: int, name: str, members: list[int]) -> int:
        return self.world.add_role(guild_id, name, members)

    def upload(
        self, filename: str, data: bytes, content_type: str = "application/json", *, size: int | None = None
    ) -> FakeAttachment:
        """A file a user attaches to a message (``post_message(attachments=...)``) or picks for a command's
        attachment option; ``size``: what Discord reports, if not the real size."""
        return self.state.upload(filename, data, content_type, size)

    async def gateway_down(self, shards: Collection[int] | None = None) -> None:
        """A gateway outage: connections (of ``shards`` only, if given) drop and reconnecting fails until
        gateway_up()."""
        await self.gateway.go_down(shards)

    def gateway_up(self) -> None:
        self.gateway.up()

    def permissions(self, guild_id: int, user_id: int) -> int:
        return self.state.permissions(guild_id, user_id)

    def channel_permissions(self, channel_id: int, user_id: int) -> int:
        return self.state.channel_permissions(channel_id, user_id)

    def fail_requests(
        self, method: str, path_contains: str, status: int, count: int, *, code: int = 0, message: str = ""
    ) -> None:
        """Answer the next `count` matching requests with `status` (e.g. 503, as during a Discord outage), or
        with a Discord error `code` (e.g. 403 50013 Missing Permissions, 400 50083 thread archived)."""
        self.rest.fail_requests(method, path_contains, status, count, code=code, message=message)

    def hold_requests(self, method: str, path_contains: str) -> asyncio.Event:
        """Matching requests wait (after being recorded) until the returned event is set."""
        return self.rest.hold_requests(method, path_contains)

    # ----------------------------------------------------------------------------------- what happened

    def channel_messages(self, channel_id: int) -> list[FakeMessage]:
        return self.state.channel_messages(channel_id)

    def count_429(self) -> int:
        return self.limiter.rejected

    def spend_channel_edits(self, channel_id: int) -> None:
        """Someone else (the bot's previous process) used up the channel's edit budget for its current
        window: the next edit there within it gets a 429."""
        self.limiter.spend(f"message_edit:{channel_id}", "message_edit")

    @property
    def identify_violations(self) -> int:
        """IDENTIFYs refused with op 9 for breaking the per-bucket rate."""
        return self.sharding.violations

    def ready_shards(self) -> list[tuple[int, int]]:
        """(shard_id, shard_count) of every open connection that has received READY, sorted."""
        return self.gateway.ready_shards()

    # ----------------------------------------------------------------------------------- acting as users

    async def post_message(
        self,
        channel_id: int,
        user_id: int,
        content: str,
        *,
        reply_to: int | None = None,
        attachments: list[FakeAttachment] | None = None,
    ) -> int:
        return self._messages.post(channel_id, user_id, content, reply_to=reply_to, attachments=attachments)

    async def edit_message(self, channel_id: int, message_id: int, content: str) -> None:
        self._messages.edit(self.state.message_in(channel_id, message_id), {"content": content})

    async def add_reaction(self, channel_id: int, message_id: int, user_id: int, emoji: str) -> None:
        self._messages.react(self.state.message_in(channel_id, message_id), user_id, emoji, add=True)

    async def remove_reaction(self, channel_id: int, message_id: int, user_id: int, emoji: str) -> None:
        self._messages.react(self.state.message_in(channel_id, message_id), user_id, emoji, add=False)

    async def delete_message(self, channel_id: int, message_id: int) -> None:
        self._messages.delete(self.state.message_in(channel_id, message_id))

    async def run_slash_command(
        self, guild_id: int, channel_id: int, user_id: int, name: str, options: dict[str, Any] | None = None
    ) -> FakeInteraction:
        return self._commands.run(INTERACTION_COMMAND, guild_id, channel_id, user_id, name, options, None)

    async def click(self, message_id: int, user_id: int, custom_id: str) -> FakeInteraction:
        return self._commands.click(self.state.messages[message_id], user_id, custom_id)

    async def run_autocomplete(
        self, guild_id: int, channel_id: int, user_id: int, name: str, options: dict[str, Any], focused: str
    ) -> FakeInteraction:
        return self._commands.run(
            INTERACTION_AUTOCOMPLETE, guild_id, channel_id, user_id, name, options, focused
        )
