"""A loopback fake of Discord (REST /api/v10 + gateway websocket) for driving the real discord.py client.

It keeps just enough server-side state (guilds, channels, public threads, direct-message channels, per-channel
permission overwrites, members, messages, interactions, application commands) to answer what discord.py 2.7
asks for, records every request and every message version for
assertions, and enforces the limits described in tests/brief CONTRACTS.md (content length, empty messages,
interaction ack deadline, webhook token lifetime, fixed-window rate limits with Discord's headers).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import hashlib
import itertools
import json
import logging
import math
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from aiohttp import BodyPartReader, WSMsgType, web

from tests.fakes.loopback import LoopbackServer

log = logging.getLogger(__name__)

DISCORD_EPOCH_MS = 1420070400000
HEARTBEAT_INTERVAL_MS = 41250
SESSION_RESUME_GRACE = 60.0  # seconds a dropped session keeps buffering events for RESUME
MAX_CONTENT = 2000

# Permission bits (https://discord.com/developers/docs/topics/permissions).
ADD_REACTIONS = 1 << 6
ADMINISTRATOR = 1 << 3
MANAGE_GUILD = 1 << 5
VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
MANAGE_MESSAGES = 1 << 13
EMBED_LINKS = 1 << 14
ATTACH_FILES = 1 << 15
READ_MESSAGE_HISTORY = 1 << 16
USE_EXTERNAL_EMOJIS = 1 << 18
USE_APPLICATION_COMMANDS = 1 << 31
SEND_MESSAGES_IN_THREADS = 1 << 38
ALL_PERMISSIONS = (1 << 51) - 1
EVERYONE_PERMISSIONS = (
    VIEW_CHANNEL
    | SEND_MESSAGES
    | READ_MESSAGE_HISTORY
    | ADD_REACTIONS
    | EMBED_LINKS
    | ATTACH_FILES
    | USE_EXTERNAL_EMOJIS
    | USE_APPLICATION_COMMANDS
    | SEND_MESSAGES_IN_THREADS
)
BOT_PERMISSIONS = EVERYONE_PERMISSIONS | MANAGE_MESSAGES

# Permissions in a DM channel (there are no roles or overwrites there).
DM_PERMISSIONS = EVERYONE_PERMISSIONS & ~(USE_APPLICATION_COMMANDS | SEND_MESSAGES_IN_THREADS)

# Channel types (https://discord.com/developers/docs/resources/channel#channel-object-channel-types).
CHANNEL_TEXT = 0
CHANNEL_DM = 1
CHANNEL_PUBLIC_THREAD = 11

GUILD_MEMBERS_INTENT = 1 << 1
DIRECT_MESSAGES_INTENT = 1 << 12
DIRECT_MESSAGE_REACTIONS_INTENT = 1 << 13
MESSAGE_CONTENT_INTENT = 1 << 15
FLAG_EPHEMERAL = 64
FLAG_LOADING = 128

# Application command option types (strings are the default).
OPT_INTEGER, OPT_BOOLEAN, OPT_USER, OPT_CHANNEL, OPT_ROLE, OPT_MENTIONABLE, OPT_NUMBER = range(4, 11)

_MENTION_RE = re.compile(r"<@!?(\d+)>")
_ROLE_MENTION_RE = re.compile(r"<@&(\d+)>")


# --------------------------------------------------------------------------------------------- records


@dataclass
class MessageVersion:
    at: float
    content: str
    embeds: list[Any]
    allowed_mentions: dict[str, Any] | None
    flags: int


@dataclass
class FakeMessage:
    id: int
    channel_id: int
    guild_id: int | None
    author_id: int
    versions: list[MessageVersion] = field(default_factory=list)
    deleted_at: float | None = None
    reactions: dict[str, set[int]] = field(default_factory=dict)
    reference_id: int | None = None
    interaction_id: int | None = None
    ephemeral: bool = False
    webhook_id: int | None = None
    type: int = 0
    mentions: list[int] = field(default_factory=list)
    mention_roles: list[int] = field(default_factory=list)
    mention_everyone: bool = False

    @property
    def content(self) -> str:
        return self.versions[-1].content

    @property
    def embeds(self) -> list[Any]:
        return self.versions[-1].embeds

    @property
    def flags(self) -> int:
        return self.versions[-1].flags

    @property
    def created_at(self) -> float:
        return self.versions[0].at

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None


@dataclass
class RequestRecord:
    at: float
    method: str
    path: str
    bucket_key: str
    status: int = 0
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class FakeInteraction:
    id: int
    token: str
    type: int
    name: str
    user_id: int
    channel_id: int
    guild_id: int | None
    created_at: float
    response_type: int | None = None
    response_data: dict[str, Any] | None = None
    responded_at: float | None = None
    message_id: int | None = None
    choices: list[dict[str, Any]] | None = None
    followup_ids: list[int] = field(default_factory=list)


@dataclass
class _User:
    id: int
    name: str
    bot: bool = False

    def payload(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "username": self.name,
            "global_name": self.name,
            "discriminator": "0",
            "avatar": None,
            "bot": self.bot,
            "public_flags": 0,
            "flags": 0,
        }


@dataclass
class _Guild:
    id: int
    name: str
    roles: dict[int, dict[str, Any]] = field(default_factory=dict)
    channels: list[int] = field(default_factory=list)
    threads: list[int] = field(default_factory=list)  # active public threads, sent in GUILD_CREATE
    members: dict[int, list[int]] = field(default_factory=dict)  # user id -> role ids (without @everyone)
    joined_at: str = ""


@dataclass
class _Channel:
    id: int
    guild_id: int | None  # None for a DM channel
    name: str
    position: int
    type: int = CHANNEL_TEXT
    parent_id: int | None = None  # a thread's text channel
    owner_id: int | None = None  # who started a thread
    recipient_id: int | None = None  # the user at the other end of a DM channel
    # Text channels: target id -> (0 role / 1 member, allow, deny). Threads have none: their parent's apply.
    overwrites: dict[int, tuple[int, int, int]] = field(default_factory=dict)
    message_count: int = 0  # threads: live messages (Discord does not count the starter message)
    total_message_sent: int = 0  # threads: every message ever sent, deletions included

    @property
    def is_thread(self) -> bool:
        return self.type == CHANNEL_PUBLIC_THREAD


class _ApiError(Exception):
    def __init__(self, status: int, code: int, message: str, errors: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.errors = status, code, message, errors

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.errors is not None:
            body["errors"] = self.errors
        return body


def _unknown_message() -> _ApiError:
    return _ApiError(404, 10008, "Unknown Message")


def _unknown_channel() -> _ApiError:
    return _ApiError(404, 10003, "Unknown Channel")


def _unknown_interaction() -> _ApiError:
    return _ApiError(404, 10062, "Unknown interaction")


def _iso(snowflake: int) -> str:
    ms = (snowflake >> 22) + DISCORD_EPOCH_MS
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat()


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def _has_other_content(body: dict[str, Any]) -> bool:
    """Attachments, stickers, components or polls make a message non-empty even without content."""
    return any(body.get(k) for k in ("attachments", "sticker_ids", "components", "poll"))


def _bucket_hash(family: str) -> str:
    return hashlib.sha1(family.encode()).hexdigest()[:32]


# --------------------------------------------------------------------------------------------- rate limits


@dataclass
class _Window:
    limit: int
    count: int
    reset_at: float  # monotonic


@dataclass
class _BucketUse:
    key: str  # state key, e.g. "channel_messages:123"
    family: str  # limit family, key into FakeDiscord.bucket_limits ("global" for the global window)
    hash: str
    scope: str  # X-RateLimit-Scope if this bucket is the one that 429s


# Route table: (method, template) -> handler attribute name. Templates are matched segment by segment.
_ROUTES: list[tuple[str, str, str]] = [
    ("GET", "/users/@me", "get_me"),
    ("GET", "/users/{user_id}", "get_user"),
    ("GET", "/gateway", "get_gateway"),
    ("GET", "/gateway/bot", "get_gateway_bot"),
    ("GET", "/oauth2/applications/@me", "get_application"),
    ("GET", "/applications/@me", "get_application"),
    ("GET", "/applications/{application_id}/commands", "get_commands"),
    ("PUT", "/applications/{application_id}/commands", "put_commands"),
    ("POST", "/applications/{application_id}/commands", "post_command"),
    ("DELETE", "/applications/{application_id}/commands/{command_id}", "delete_command"),
    ("GET", "/applications/{application_id}/guilds/{guild_id}/commands", "get_commands"),
    ("PUT", "/applications/{application_id}/guilds/{guild_id}/commands", "put_commands"),
    ("POST", "/applications/{application_id}/guilds/{guild_id}/commands", "post_command"),
    ("DELETE", "/applications/{application_id}/guilds/{guild_id}/commands/{command_id}", "delete_command"),
    ("POST", "/interactions/{interaction_id}/{token}/callback", "interaction_callback"),
    ("POST", "/webhooks/{application_id}/{token}", "webhook_execute"),
    ("GET", "/webhooks/{application_id}/{token}/messages/{message_id}", "webhook_get_message"),
    ("PATCH", "/webhooks/{application_id}/{token}/messages/{message_id}", "webhook_edit_message"),
    ("DELETE", "/webhooks/{application_id}/{token}/messages/{message_id}", "webhook_delete_message"),
    ("GET", "/channels/{channel_id}", "get_channel"),
    ("GET", "/channels/{channel_id}/messages", "list_messages"),
    ("POST", "/channels/{channel_id}/messages", "create_message"),
    ("GET", "/channels/{channel_id}/messages/{message_id}", "get_message"),
    ("PATCH", "/channels/{channel_id}/messages/{message_id}", "edit_message"),
    ("DELETE", "/channels/{channel_id}/messages/{message_id}", "delete_message_route"),
    ("PUT", "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me", "add_own_reaction"),
    ("DELETE", "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me", "remove_own_reaction"),
    (
        "DELETE",
        "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/{user_id}",
        "remove_user_reaction",
    ),
    ("GET", "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}", "get_reactions"),
    ("DELETE", "/channels/{channel_id}/messages/{message_id}/reactions", "clear_reactions"),
    ("DELETE", "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}", "clear_emoji_reactions"),
    ("POST", "/channels/{channel_id}/typing", "typing"),
    ("GET", "/guilds/{guild_id}", "get_guild"),
    ("GET", "/guilds/{guild_id}/channels", "get_guild_channels"),
    ("GET", "/guilds/{guild_id}/roles", "get_guild_roles"),
    ("GET", "/guilds/{guild_id}/members/{user_id}", "get_member"),
]
_ROUTE_INDEX: dict[tuple[str, int], list[tuple[list[str], str, str]]] = collections.defaultdict(list)
for _method, _template, _handler in _ROUTES:
    _segments = _template.strip("/").split("/")
    _ROUTE_INDEX[(_method, len(_segments))].append((_segments, _template, _handler))

_CHANNEL_MESSAGE_TEMPLATES = {
    "/channels/{channel_id}/messages",
    "/channels/{channel_id}/messages/{message_id}",
}
_MESSAGE_WRITE_HANDLERS = {"webhook_execute", "webhook_edit_message"}


def _match_route(method: str, path: str) -> tuple[str, str, dict[str, str]] | None:
    segments = [unquote(s) for s in path.strip("/").split("/")]
    # Static segments win over placeholders (e.g. .../@me vs .../{user_id}).
    best: tuple[int, str, str, dict[str, str]] | None = None
    for pattern, template, handler in _ROUTE_INDEX.get((method, len(segments)), []):
        params: dict[str, str] = {}
        statics = 0
        for want, got in zip(pattern, segments, strict=True):
            if want.startswith("{"):
                params[want[1:-1]] = got
            elif want == got:
                statics += 1
            else:
                break
        else:
            if best is None or statics > best[0]:
                best = (statics, template, handler, params)
    return None if best is None else (best[1], best[2], best[3])


# --------------------------------------------------------------------------------------------- gateway


class _GatewayConn:
    """One websocket connection; frames go through a queue so dispatch order equals send order."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.queue: asyncio.Queue[str | Callable[[], None] | None] = asyncio.Queue()
        self.session: _Session | None = None
        self.ready = False
        self.writer = asyncio.create_task(self._write())

    async def _write(self) -> None:
        while (item := await self.queue.get()) is not None:
            if callable(item):
                item()
                continue
            try:
                await self.ws.send_str(item)
            except (ConnectionError, RuntimeError):
                log.debug("gateway send failed; dropping connection frames")
                return

    def send(self, payload: dict[str, Any]) -> None:
        self.queue.put_nowait(json.dumps(payload))


class _Session:
    def __init__(self, session_id: str, intents: int) -> None:
        self.id = session_id
        self.intents = intents
        self.seq = 0
        self.backlog: collections.deque[tuple[int, str]] = collections.deque(maxlen=2000)
        self.conn: _GatewayConn | None = None
        self.detached_at = 0.0

    def dispatch(self, event: str, data: dict[str, Any]) -> None:
        self.seq += 1
        frame = json.dumps({"op": 0, "t": event, "s": self.seq, "d": data})
        self.backlog.append((self.seq, frame))
        if self.conn is not None:
            self.conn.queue.put_nowait(frame)


# --------------------------------------------------------------------------------------------- server


class FakeDiscord(LoopbackServer):
    """Fake Discord HTTP API + gateway on 127.0.0.1; see module docstring."""

    def __init__(
        self,
        *,
        rate_limits: bool = True,
        global_limit: int = 50,
        token_ttl: float = 900.0,
        ack_deadline: float = 3.0,
        latency: float = 0.0,
    ) -> None:
        super().__init__()
        self.rate_limits = rate_limits
        self.global_limit = global_limit
        self.token_ttl = token_ttl
        self.ack_deadline = ack_deadline
        self.latency = latency
        # [method, path substring, status, remaining count, Discord error code, message]
        self._outages: list[list[Any]] = []
        self._holds: list[tuple[str, str, asyncio.Event]] = []  # [method, path substring, release]
        # family -> (limit, window seconds); tests may override entries before or during a run.
        self.bucket_limits: dict[str, tuple[int, float]] = {
            "channel_messages": (5, 5.0),
            "webhook": (5, 5.0),
            "reactions": (1, 0.25),
            "default": (50, 1.0),
        }
        # Real Discord blanks content of others' messages unless MESSAGE_CONTENT intent or a mention/DM.
        self.enforce_message_content_intent = True

        self.token = "fake-bot-token"
        self._snowflake_counter = itertools.count()
        self.application_id = self._snowflake()
        self.bot_user_id = self.application_id  # Discord bots share their application's id
        self._users: dict[int, _User] = {self.bot_user_id: _User(self.bot_user_id, "Streamcord", bot=True)}
        self._guilds: dict[int, _Guild] = {}
        self._channels: dict[int, _Channel] = {}

        self.messages: dict[int, FakeMessage] = {}
        self._by_channel: dict[int, list[FakeMessage]] = collections.defaultdict(list)
        self.requests: list[RequestRecord] = []
        self.interactions: dict[int, FakeInteraction] = {}
        self._interactions_by_token: dict[str, FakeInteraction] = {}
        self.commands: list[dict[str, Any]] = []
        self.unknown_routes: list[str] = []
        self.ready_count = 0  # READY+GUILD_CREATEs fully written, across all connections

        self._windows: dict[str, _Window] = {}
        self._n429 = 0
        self._sessions: dict[str, _Session] = {}
        self._conns: set[_GatewayConn] = set()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # ----------------------------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        app = web.Application(client_max_size=32 * 1024 * 1024)
        app.router.add_get("/gateway", self._gateway_handler)
        app.router.add_route("*", "/api/v10/{tail:.*}", self._rest_handler)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = self._runner.addresses[0][1]
        log.info("fake discord listening on %s", self.api_base)

    async def close(self) -> None:
        for conn in list(self._conns):
            conn.queue.put_nowait(None)
            with contextlib.suppress(Exception):
                await conn.ws.close(code=1001)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    # ----------------------------------------------------------------------------------- world setup

    def _snowflake(self) -> int:
        ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
        return (ms << 22) | (next(self._snowflake_counter) & 0x3FFFFF)

    def add_guild(self, name: str = "Test Guild") -> int:
        gid = self._snowflake()
        guild = _Guild(gid, name, joined_at=_now_iso())
        guild.roles[gid] = self._role_payload(gid, "@everyone", EVERYONE_PERMISSIONS, 0)
        bot_role = self._snowflake()
        guild.roles[bot_role] = self._role_payload(bot_role, "Streamcord", BOT_PERMISSIONS, 1, managed=True)
        guild.members[self.bot_user_id] = [bot_role]
        self._guilds[gid] = guild
        return gid

    def add_channel(self, guild_id: int, name: str = "general") -> int:
        guild = self._guilds[guild_id]
        cid = self._snowflake()
        self._channels[cid] = _Channel(cid, guild_id, name, len(guild.channels))
        guild.channels.append(cid)
        return cid

    def add_thread(
        self, guild_id: int, parent_id: int, name: str = "a thread", *, owner_id: int | None = None
    ) -> int:
        """A public thread in text channel `parent_id`, started by `owner_id` (default: the bot).

        It is sent in GUILD_CREATE's `threads`, or as THREAD_CREATE to a bot already connected; its
        permissions are its parent's (threads have no overwrites of their own)."""
        guild = self._guilds[guild_id]
        parent = self._channels.get(parent_id)
        if parent is None or parent.guild_id != guild_id or parent.type != CHANNEL_TEXT:
            raise ValueError(f"{parent_id} is not a text channel of guild {guild_id}")
        owner = self.bot_user_id if owner_id is None else owner_id
        if owner not in guild.members:
            raise ValueError(f"thread owner {owner} is not a member of guild {guild_id}")
        tid = self._snowflake()
        self._channels[tid] = _Channel(
            tid, guild_id, name, 0, type=CHANNEL_PUBLIC_THREAD, parent_id=parent_id, owner_id=owner
        )
        guild.threads.append(tid)
        self._dispatch("THREAD_CREATE", self._channel_payload(self._channels[tid]) | {"newly_created": True})
        self._changed()
        return tid

    def add_dm_channel(self, user_id: int) -> int:
        """The DM channel between the bot and `user_id` (created once, like Discord's)."""
        if user_id not in self._users or user_id == self.bot_user_id:
            raise ValueError(f"no user {user_id} to open a DM with")
        for channel in self._channels.values():
            if channel.type == CHANNEL_DM and channel.recipient_id == user_id:
                return channel.id
        cid = self._snowflake()
        self._channels[cid] = _Channel(cid, None, "", 0, type=CHANNEL_DM, recipient_id=user_id)
        return cid

    def add_user(
        self, guild_id: int, name: str, *, manage_messages: bool = False, manage_guild: bool = False
    ) -> int:
        guild = self._guilds[guild_id]
        uid = self._snowflake()
        self._users[uid] = _User(uid, name)
        roles = []
        for wanted, perm, role_name in (
            (manage_messages, MANAGE_MESSAGES, "Moderator"),
            (manage_guild, MANAGE_GUILD, "Manager"),
        ):
            if wanted:
                roles.append(self._guild_role(guild, role_name, perm))
        guild.members[uid] = roles
        return uid

    def _guild_role(self, guild: _Guild, name: str, permissions: int) -> int:
        for rid, role in guild.roles.items():
            if role["name"] == name:
                return rid
        rid = self._snowflake()
        guild.roles[rid] = self._role_payload(rid, name, EVERYONE_PERMISSIONS | permissions, len(guild.roles))
        return rid

    @staticmethod
    def _role_payload(
        rid: int, name: str, permissions: int, position: int, *, managed: bool = False
    ) -> dict[str, Any]:
        return {
            "id": str(rid),
            "name": name,
            "permissions": str(permissions),
            "position": position,
            "color": 0,
            "colors": {"primary_color": 0},
            "hoist": False,
            "managed": managed,
            "mentionable": False,
            "icon": None,
            "unicode_emoji": None,
            "flags": 0,
        }

    def permissions(self, guild_id: int, user_id: int) -> int:
        guild = self._guilds[guild_id]
        perms = int(guild.roles[guild_id]["permissions"])
        for rid in guild.members.get(user_id, []):
            perms |= int(guild.roles[rid]["permissions"])
        return ALL_PERMISSIONS if perms & ADMINISTRATOR else perms

    def set_permission_overwrite(
        self, channel_id: int, target_id: int, *, allow: int = 0, deny: int = 0
    ) -> None:
        """Allow/deny bits for a role (or @everyone: the guild id) or a member in a text channel.

        Threads cannot have overwrites (they use their parent's). A connected bot gets CHANNEL_UPDATE."""
        channel = self._channel(channel_id)
        if channel.type != CHANNEL_TEXT or channel.guild_id is None:
            raise ValueError(f"{channel_id} is not a text channel (threads use their parent's overwrites)")
        guild = self._guilds[channel.guild_id]
        if target_id in guild.roles:
            kind = 0
        elif target_id in guild.members:
            kind = 1
        else:
            raise ValueError(f"{target_id} is neither a role nor a member of guild {guild.id}")
        if allow or deny:
            channel.overwrites[target_id] = (kind, allow, deny)
        else:
            channel.overwrites.pop(target_id, None)
        self._dispatch("CHANNEL_UPDATE", self._channel_payload(channel))
        self._changed()

    def channel_permissions(self, channel_id: int, user_id: int) -> int:
        """A user's permissions in a channel, as Discord resolves them: guild roles, then the channel's
        @everyone, role and member overwrites. A thread resolves through its parent channel."""
        channel = self._channel(channel_id)
        if channel.guild_id is None:
            return DM_PERMISSIONS
        if channel.parent_id is not None:
            channel = self._channels[channel.parent_id]
        perms = self.permissions(channel.guild_id, user_id)
        if perms & ADMINISTRATOR:
            return perms
        guild = self._guilds[channel.guild_id]
        everyone = channel.overwrites.get(guild.id)
        if everyone is not None:
            perms = (perms & ~everyone[2]) | everyone[1]
        allow = deny = 0
        for rid in guild.members.get(user_id, []):
            if (role := channel.overwrites.get(rid)) is not None and role[0] == 0:
                allow, deny = allow | role[1], deny | role[2]
        perms = (perms & ~deny) | allow
        member = channel.overwrites.get(user_id)
        if member is not None and member[0] == 1:
            perms = (perms & ~member[2]) | member[1]
        return perms

    # ----------------------------------------------------------------------------------- payloads

    def _member_payload(
        self,
        guild: _Guild,
        user_id: int,
        *,
        with_user: bool = True,
        with_permissions: bool = False,
        channel_id: int | None = None,
    ) -> dict[str, Any]:
        """`with_permissions` adds the member's permissions in `channel_id` (or guild-wide without one)."""
        data: dict[str, Any] = {
            "roles": [str(r) for r in guild.members.get(user_id, [])],
            "joined_at": guild.joined_at,
            "nick": None,
            "avatar": None,
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
            "premium_since": None,
            "communication_disabled_until": None,
        }
        if with_user:
            data["user"] = self._users[user_id].payload()
        if with_permissions:
            perms = (
                self.permissions(guild.id, user_id)
                if channel_id is None
                else self.channel_permissions(channel_id, user_id)
            )
            data["permissions"] = str(perms)
        return data

    def _channel_payload(self, channel: _Channel) -> dict[str, Any]:
        if channel.type == CHANNEL_DM:
            assert channel.recipient_id is not None
            return {
                "id": str(channel.id),
                "type": CHANNEL_DM,
                "last_message_id": None,
                "recipients": [self._users[channel.recipient_id].payload()],
                "flags": 0,
            }
        if channel.is_thread:
            created = _iso(channel.id)
            return {
                "id": str(channel.id),
                "type": channel.type,
                "guild_id": str(channel.guild_id),
                "parent_id": str(channel.parent_id),
                "owner_id": str(channel.owner_id),
                "name": channel.name,
                "last_message_id": None,
                "rate_limit_per_user": 0,
                "message_count": channel.message_count,
                "total_message_sent": channel.total_message_sent,
                "member_count": 1,
                "flags": 0,
                "applied_tags": [],
                "thread_metadata": {
                    "archived": False,
                    "auto_archive_duration": 1440,
                    "archive_timestamp": created,
                    "locked": False,
                    "invitable": True,
                    "create_timestamp": created,
                },
            }
        return {
            "id": str(channel.id),
            "type": 0,
            "guild_id": str(channel.guild_id),
            "name": channel.name,
            "position": channel.position,
            "permission_overwrites": [
                {"id": str(target), "type": kind, "allow": str(allow), "deny": str(deny)}
                for target, (kind, allow, deny) in channel.overwrites.items()
            ],
            "nsfw": False,
            "topic": None,
            "last_message_id": None,
            "parent_id": None,
            "rate_limit_per_user": 0,
            "flags": 0,
        }

    def _guild_payload(self, guild: _Guild) -> dict[str, Any]:
        return {
            "id": str(guild.id),
            "name": guild.name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "owner_id": str(guild.id + 1),
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "roles": list(guild.roles.values()),
            "emojis": [],
            "stickers": [],
            "features": [],
            "mfa_level": 0,
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "vanity_url_code": None,
            "description": None,
            "banner": None,
            "premium_tier": 0,
            "preferred_locale": "en-US",
            "nsfw_level": 0,
            "premium_progress_bar_enabled": False,
        }

    def _guild_create_payload(self, guild: _Guild, intents: int) -> dict[str, Any]:
        data = self._guild_payload(guild)
        data.update(
            {
                "joined_at": guild.joined_at,
                "large": False,
                "unavailable": False,
                "member_count": len(guild.members),
                "voice_states": [],
                "presences": [],
                "threads": [self._channel_payload(self._channels[t]) for t in guild.threads],
                "stage_instances": [],
                "guild_scheduled_events": [],
                "soundboard_sounds": [],
                "channels": [self._channel_payload(self._channels[c]) for c in guild.channels],
                # Without GUILD_MEMBERS Discord only sends the bot's own member.
                "members": [
                    self._member_payload(guild, uid)
                    for uid in guild.members
                    if intents & GUILD_MEMBERS_INTENT or uid == self.bot_user_id
                ],
            }
        )
        return data

    def _message_payload(self, msg: FakeMessage, *, for_gateway: bool = False) -> dict[str, Any]:
        version = msg.versions[-1]
        data: dict[str, Any] = {
            "id": str(msg.id),
            "channel_id": str(msg.channel_id),
            "type": msg.type,
            "author": self._users[msg.author_id].payload(),
            "content": version.content,
            "embeds": version.embeds,
            "flags": version.flags,
            "timestamp": _iso(msg.id),
            "edited_timestamp": _now_iso() if len(msg.versions) > 1 else None,
            "tts": False,
            "mention_everyone": msg.mention_everyone,
            "mentions": [self._users[u].payload() for u in msg.mentions if u in self._users],
            "mention_roles": [str(r) for r in msg.mention_roles],
            "attachments": [],
            "components": [],
            "pinned": False,
            "reactions": [
                {
                    "emoji": self._emoji_payload(e),
                    "count": len(users),
                    "me": self.bot_user_id in users,
                    "count_details": {"burst": 0, "normal": len(users)},
                    "burst_colors": [],
                    "me_burst": False,
                }
                for e, users in msg.reactions.items()
                if users
            ],
        }
        if msg.guild_id is not None and for_gateway:
            data["guild_id"] = str(msg.guild_id)
            guild = self._guilds[msg.guild_id]
            if msg.author_id in guild.members:
                data["member"] = self._member_payload(guild, msg.author_id, with_user=False)
        if msg.webhook_id is not None:
            data["webhook_id"] = str(msg.webhook_id)
            data["application_id"] = str(self.application_id)
        if msg.reference_id is not None:
            data["message_reference"] = {
                "type": 0,
                "message_id": str(msg.reference_id),
                "channel_id": str(msg.channel_id),
            }
            if msg.guild_id is not None:
                data["message_reference"]["guild_id"] = str(msg.guild_id)
        if msg.interaction_id is not None:
            inter = self.interactions[msg.interaction_id]
            data["interaction_metadata"] = {
                "id": str(inter.id),
                "type": inter.type,
                "user": self._users[inter.user_id].payload(),
                "authorizing_integration_owners": {"0": str(inter.guild_id)} if inter.guild_id else {},
            }
        return data

    @staticmethod
    def _emoji_payload(emoji: str) -> dict[str, Any]:
        name, sep, eid = emoji.partition(":")
        if sep and eid.isdigit():
            return {"id": eid, "name": name, "animated": False}
        return {"id": None, "name": emoji}

    # ----------------------------------------------------------------------------------- waiting

    @property
    def connected(self) -> int:
        """Open gateway connections that have received READY (or RESUMED)."""
        return sum(1 for c in self._conns if c.ready and not c.ws.closed)

    async def wait_ready(self, timeout: float = 10.0) -> None:
        """Wait until a currently connected bot has IDENTIFYed and received READY + all GUILD_CREATEs."""
        await self.wait_for(
            lambda: self.connected > 0, timeout, "a bot to IDENTIFY and receive READY + GUILD_CREATE"
        )

    # ----------------------------------------------------------------------------------- dispatch

    def _live_sessions(self) -> list[_Session]:
        """Connected sessions plus recently dropped ones (so a RESUME can replay what it missed)."""
        cutoff = time.monotonic() - SESSION_RESUME_GRACE
        return [s for s in self._sessions.values() if s.conn is not None or s.detached_at > cutoff]

    def _dispatch(self, event: str, data: dict[str, Any], *, intent: int = 0) -> None:
        """Send an event to every live session (with `intent`, only to those that asked for it)."""
        for session in self._live_sessions():
            if not intent or session.intents & intent:
                session.dispatch(event, data)

    def _dispatch_message(self, event: str, msg: FakeMessage) -> None:
        if msg.ephemeral:
            return  # Discord never sends ephemeral messages over the gateway
        payload = self._message_payload(msg, for_gateway=True)
        blank = dict(payload, content="", embeds=[], attachments=[], components=[])
        visible = (
            msg.author_id == self.bot_user_id or self.bot_user_id in msg.mentions or msg.guild_id is None
        )
        for session in self._live_sessions():
            if msg.guild_id is None and not session.intents & DIRECT_MESSAGES_INTENT:
                continue
            hide = (
                self.enforce_message_content_intent
                and not visible
                and not session.intents & MESSAGE_CONTENT_INTENT
            )
            session.dispatch(event, blank if hide else payload)

    # ----------------------------------------------------------------------------------- message store

    def channel_messages(self, channel_id: int) -> list[FakeMessage]:
        return list(self._by_channel.get(channel_id, ()))

    def count_429(self) -> int:
        return self._n429

    def _new_message(
        self,
        channel: _Channel,
        author_id: int,
        content: str,
        embeds: list[Any],
        *,
        allowed_mentions: dict[str, Any] | None,
        flags: int = 0,
        reference_id: int | None = None,
        interaction_id: int | None = None,
        webhook: bool = False,
        type_: int = 0,
    ) -> FakeMessage:
        msg = FakeMessage(
            id=self._snowflake(),
            channel_id=channel.id,
            guild_id=channel.guild_id,
            author_id=author_id,
            versions=[MessageVersion(time.monotonic(), content, embeds, allowed_mentions, flags)],
            reference_id=reference_id,
            interaction_id=interaction_id,
            ephemeral=bool(flags & FLAG_EPHEMERAL),
            webhook_id=self.application_id if webhook else None,
            type=type_,
        )
        self._compute_mentions(msg, allowed_mentions)
        self.messages[msg.id] = msg
        self._by_channel[channel.id].append(msg)
        if channel.is_thread and not msg.ephemeral:
            channel.message_count += 1
            channel.total_message_sent += 1
        self._dispatch_message("MESSAGE_CREATE", msg)
        self._changed()
        return msg

    def _compute_mentions(self, msg: FakeMessage, allowed: dict[str, Any] | None) -> None:
        content = msg.content
        users = [int(u) for u in _MENTION_RE.findall(content) if int(u) in self._users]
        roles = [int(r) for r in _ROLE_MENTION_RE.findall(content)]
        everyone = "@everyone" in content or "@here" in content
        replied = self.messages.get(msg.reference_id) if msg.reference_id else None
        if allowed is not None:
            parse = allowed.get("parse", [])
            if "users" not in parse:
                users = [u for u in users if str(u) in {str(x) for x in allowed.get("users", [])}]
            if "roles" not in parse:
                roles = [r for r in roles if str(r) in {str(x) for x in allowed.get("roles", [])}]
            everyone = everyone and "everyone" in parse
            if replied is not None and allowed.get("replied_user", False):
                users.append(replied.author_id)
        elif replied is not None:
            users.append(replied.author_id)  # replies ping their author by default
        msg.mentions = list(dict.fromkeys(users))
        msg.mention_roles = roles
        msg.mention_everyone = everyone

    def _edit(self, msg: FakeMessage, body: dict[str, Any], *, clear_loading: bool = False) -> None:
        prev = msg.versions[-1]
        content = body["content"] if body.get("content") is not None else prev.content
        if "content" in body and body["content"] is None:
            content = ""
        embeds = body["embeds"] if "embeds" in body and body["embeds"] is not None else prev.embeds
        flags = prev.flags
        if clear_loading:
            flags &= ~FLAG_LOADING
        self._validate(content, embeds, empty_ok=_has_other_content(body))
        allowed = body.get("allowed_mentions")
        msg.versions.append(MessageVersion(time.monotonic(), content, embeds, allowed, flags))
        self._compute_mentions(msg, allowed)
        self._dispatch_message("MESSAGE_UPDATE", msg)
        self._changed()

    def _delete(self, msg: FakeMessage) -> None:
        if msg.deleted_at is not None:
            raise _unknown_message()
        msg.deleted_at = time.monotonic()
        if not msg.ephemeral:
            channel = self._channels[msg.channel_id]
            if channel.is_thread:
                channel.message_count -= 1
            data = {"id": str(msg.id), "channel_id": str(msg.channel_id)}
            if msg.guild_id is not None:
                data["guild_id"] = str(msg.guild_id)
            self._dispatch("MESSAGE_DELETE", data, intent=0 if msg.guild_id else DIRECT_MESSAGES_INTENT)
        self._changed()

    @staticmethod
    def _validate(content: str, embeds: list[Any], *, empty_ok: bool = False, prefix: str = "") -> None:
        if len(content) > MAX_CONTENT:
            errors = {
                "content": {
                    "_errors": [
                        {
                            "code": "BASE_TYPE_MAX_LENGTH",
                            "message": f"Must be {MAX_CONTENT} or fewer in length.",
                        }
                    ]
                }
            }
            if prefix:
                errors = {prefix: errors}
            raise _ApiError(400, 50035, "Invalid Form Body", errors)
        if len(embeds) > 10:
            raise _ApiError(
                400,
                50035,
                "Invalid Form Body",
                {
                    "embeds": {
                        "_errors": [
                            {"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 10 or fewer in length."}
                        ]
                    }
                },
            )
        if not empty_ok and not content and not embeds:
            raise _ApiError(400, 50006, "Cannot send an empty message")

    def _message_in(self, channel_id: int, message_id: int) -> FakeMessage:
        msg = self.messages.get(message_id)
        # Ephemeral messages exist only for their interaction's webhook, never for channel routes.
        if msg is None or msg.channel_id != channel_id or msg.deleted_at is not None or msg.ephemeral:
            raise _unknown_message()
        return msg

    def _channel(self, channel_id: int | str) -> _Channel:
        try:
            return self._channels[int(channel_id)]
        except (KeyError, ValueError):
            raise _unknown_channel() from None

    # ----------------------------------------------------------------------------------- acting as users

    async def post_message(
        self, channel_id: int, user_id: int, content: str, *, reply_to: int | None = None
    ) -> int:
        channel = self._channel(channel_id)
        if channel.type == CHANNEL_DM and user_id != channel.recipient_id:
            raise ValueError(f"user {user_id} is not in DM channel {channel_id}")
        if reply_to is not None:
            self._message_in(channel_id, reply_to)
        msg = self._new_message(
            channel,
            user_id,
            content,
            [],
            allowed_mentions=None,
            reference_id=reply_to,
            type_=19 if reply_to is not None else 0,
        )
        return msg.id

    async def add_reaction(self, channel_id: int, message_id: int, user_id: int, emoji: str) -> None:
        self._react(self._message_in(channel_id, message_id), user_id, emoji, add=True)

    async def remove_reaction(self, channel_id: int, message_id: int, user_id: int, emoji: str) -> None:
        self._react(self._message_in(channel_id, message_id), user_id, emoji, add=False)

    async def delete_message(self, channel_id: int, message_id: int) -> None:
        self._delete(self._message_in(channel_id, message_id))

    def _react(self, msg: FakeMessage, user_id: int, emoji: str, *, add: bool) -> None:
        users = msg.reactions.setdefault(emoji, set())
        if (user_id in users) == add:
            return  # Discord ignores duplicate adds/removes silently
        (users.add if add else users.discard)(user_id)
        data: dict[str, Any] = {
            "user_id": str(user_id),
            "channel_id": str(msg.channel_id),
            "message_id": str(msg.id),
            "emoji": self._emoji_payload(emoji),
            "burst": False,
            "type": 0,
        }
        if msg.guild_id is not None:
            data["guild_id"] = str(msg.guild_id)
            if add:
                data["member"] = self._member_payload(self._guilds[msg.guild_id], user_id)
                data["message_author_id"] = str(msg.author_id)
                data["burst_colors"] = []
        self._dispatch(
            "MESSAGE_REACTION_ADD" if add else "MESSAGE_REACTION_REMOVE",
            data,
            intent=0 if msg.guild_id else DIRECT_MESSAGE_REACTIONS_INTENT,
        )
        self._changed()

    def _find_command(self, guild_id: int | None, name: str) -> dict[str, Any]:
        for cmd in self.commands:
            if (
                cmd["name"] == name
                and cmd.get("type", 1) == 1
                and cmd.get("guild_id") == (str(guild_id) if guild_id else None)
            ):
                return cmd
        for cmd in self.commands:
            if cmd["name"] == name and cmd.get("type", 1) == 1 and cmd.get("guild_id") is None:
                return cmd
        synced = [c["name"] for c in self.commands]
        raise LookupError(f"slash command {name!r} is not synced (synced: {synced})")

    def _build_options(
        self,
        guild: _Guild | None,
        schema: list[dict[str, Any]],
        values: dict[str, Any],
        resolved: dict[str, dict[str, Any]],
        focused: str | None,
    ) -> list[dict[str, Any]]:
        by_name = {o["name"]: o for o in schema}
        out = []
        for name, value in values.items():
            opt = by_name.get(name)
            if opt is None:
                raise LookupError(f"option {name!r} not in synced schema {sorted(by_name)}")
            otype = opt["type"]
            entry: dict[str, Any] = {"name": name, "type": otype}
            if name == focused:
                entry.update(value=str(value), focused=True)
            elif otype == OPT_INTEGER:
                entry["value"] = int(value)
            elif otype == OPT_NUMBER:
                entry["value"] = float(value)
            elif otype == OPT_BOOLEAN:
                entry["value"] = bool(value)
            elif otype in (OPT_USER, OPT_CHANNEL, OPT_ROLE, OPT_MENTIONABLE):
                entry["value"] = str(int(value))
                self._resolve(guild, int(value), otype, resolved)
            else:
                entry["value"] = str(value)
            out.append(entry)
        return out

    def _resolve(
        self, guild: _Guild | None, target: int, otype: int, resolved: dict[str, dict[str, Any]]
    ) -> None:
        if target in self._users and otype in (OPT_USER, OPT_MENTIONABLE):
            resolved.setdefault("users", {})[str(target)] = self._users[target].payload()
            if guild is not None and target in guild.members:
                resolved.setdefault("members", {})[str(target)] = self._member_payload(
                    guild, target, with_user=False, with_permissions=True
                )
        elif target in self._channels:
            data = self._channel_payload(self._channels[target])
            data["permissions"] = str(self.channel_permissions(target, self.bot_user_id))
            resolved.setdefault("channels", {})[str(target)] = data
        elif guild is not None and target in guild.roles:
            resolved.setdefault("roles", {})[str(target)] = guild.roles[target]

    def _interaction(
        self,
        itype: int,
        guild_id: int,
        channel_id: int,
        user_id: int,
        name: str,
        options: dict[str, Any] | None,
        focused: str | None,
    ) -> FakeInteraction:
        guild = self._guilds[guild_id]
        channel = self._channel(channel_id)
        if channel.guild_id != guild_id:
            raise LookupError(f"channel {channel_id} is not in guild {guild_id}")
        words = name.split()
        cmd = self._find_command(guild_id, words[0])
        resolved: dict[str, dict[str, Any]] = {}
        schema = cmd.get("options", [])
        nest: list[tuple[str, int]] = []
        for word in words[1:]:
            sub = next((o for o in schema if o["name"] == word and o["type"] in (1, 2)), None)
            if sub is None:
                raise LookupError(f"{word!r} is not a subcommand of {cmd['name']!r}")
            nest.append((word, sub["type"]))
            schema = sub.get("options", [])
        opts = self._build_options(guild, schema, options or {}, resolved, focused)
        for word, stype in reversed(nest):
            opts = [{"name": word, "type": stype, "options": opts}]
        inter = FakeInteraction(
            id=self._snowflake(),
            token=f"itoken-{secrets.token_urlsafe(24)}",
            type=itype,
            name=name,
            user_id=user_id,
            channel_id=channel_id,
            guild_id=guild_id,
            created_at=time.monotonic(),
        )
        self.interactions[inter.id] = inter
        self._interactions_by_token[inter.token] = inter
        data: dict[str, Any] = {"id": cmd["id"], "name": cmd["name"], "type": 1, "options": opts}
        if cmd.get("guild_id"):
            data["guild_id"] = cmd["guild_id"]
        if resolved:
            data["resolved"] = resolved
        # A thread's payload carries type 11 and parent_id, so discord.py builds a Thread even uncached.
        channel_data = self._channel_payload(channel)
        channel_data["permissions"] = str(self.channel_permissions(channel_id, user_id))
        payload = {
            "id": str(inter.id),
            "application_id": str(self.application_id),
            "type": itype,
            "data": data,
            "guild_id": str(guild_id),
            "guild": {"id": str(guild_id), "locale": "en-US", "features": []},
            "channel_id": str(channel_id),
            "channel": channel_data,
            "member": self._member_payload(guild, user_id, with_permissions=True, channel_id=channel_id),
            "app_permissions": str(self.channel_permissions(channel_id, self.bot_user_id)),
            "token": inter.token,
            "version": 1,
            "locale": "en-US",
            "guild_locale": "en-US",
            "entitlements": [],
            "authorizing_integration_owners": {"0": str(guild_id)},
            "context": 0,
            "attachment_size_limit": 10 * 1024 * 1024,
        }
        self._dispatch("INTERACTION_CREATE", payload)
        self._changed()
        return inter

    async def run_slash_command(
        self, guild_id: int, channel_id: int, user_id: int, name: str, options: dict[str, Any] | None = None
    ) -> FakeInteraction:
        return self._interaction(2, guild_id, channel_id, user_id, name, options, None)

    async def run_autocomplete(
        self, guild_id: int, channel_id: int, user_id: int, name: str, options: dict[str, Any], focused: str
    ) -> FakeInteraction:
        return self._interaction(4, guild_id, channel_id, user_id, name, options, focused)

    # ----------------------------------------------------------------------------------- gateway

    async def _gateway_handler(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        conn = _GatewayConn(ws)
        self._conns.add(conn)
        conn.send({"op": 10, "d": {"heartbeat_interval": HEARTBEAT_INTERVAL_MS}, "s": None, "t": None})
        try:
            async for frame in ws:
                if frame.type is not WSMsgType.TEXT:
                    continue
                try:
                    msg = json.loads(frame.data)
                except ValueError:
                    await ws.close(code=4002, message=b"Error while decoding payload.")
                    break
                await self._gateway_op(conn, msg.get("op"), msg.get("d"))
        except ConnectionError:
            log.debug("gateway connection dropped")
        finally:
            if conn.session is not None and conn.session.conn is conn:
                conn.session.conn = None
                conn.session.detached_at = time.monotonic()
            conn.queue.put_nowait(None)
            self._conns.discard(conn)
            self._changed()
        return ws

    async def _gateway_op(self, conn: _GatewayConn, op: Any, data: Any) -> None:
        if op == 1:
            conn.send({"op": 11, "d": None, "s": None, "t": None})
        elif op == 2:
            if data.get("token") != self.token:
                await conn.ws.close(code=4004, message=b"Authentication failed.")
                return
            session = _Session(secrets.token_hex(16), int(data.get("intents", 0)))
            self._sessions[session.id] = session
            self._attach(conn, session)
            session.dispatch(
                "READY",
                {
                    "v": 10,
                    "user": self._users[self.bot_user_id].payload()
                    | {"verified": True, "mfa_enabled": False},
                    "guilds": [{"id": str(g), "unavailable": True} for g in self._guilds],
                    "session_id": session.id,
                    "session_type": "normal",
                    "resume_gateway_url": self.gateway_url,
                    "application": {"id": str(self.application_id), "flags": 1 << 23},
                    "private_channels": [],
                    "relationships": [],
                    "presences": [],
                    "geo_ordered_rtc_regions": [],
                },
            )
            for guild in self._guilds.values():
                session.dispatch("GUILD_CREATE", self._guild_create_payload(guild, session.intents))
            conn.queue.put_nowait(lambda: self._mark_ready(conn))
        elif op == 6:
            session = self._sessions.get(data.get("session_id", ""))
            if session is None or data.get("token") != self.token:
                conn.send({"op": 9, "d": False, "s": None, "t": None})
                return
            self._attach(conn, session)
            seq = data.get("seq") or 0
            for s, frame in session.backlog:
                if s > seq:
                    conn.queue.put_nowait(frame)
            session.dispatch("RESUMED", {})
            conn.queue.put_nowait(lambda: self._mark_ready(conn))
        elif op == 8:
            guild = self._guilds.get(int(data.get("guild_id", 0)))
            if guild is not None and conn.session is not None:
                conn.session.dispatch(
                    "GUILD_MEMBERS_CHUNK",
                    {
                        "guild_id": str(guild.id),
                        "chunk_index": 0,
                        "chunk_count": 1,
                        "not_found": [],
                        "members": [self._member_payload(guild, uid) for uid in guild.members],
                        "nonce": data.get("nonce"),
                    },
                )
        # op 3 (presence), 4 (voice) and anything else are accepted and ignored.

    def _attach(self, conn: _GatewayConn, session: _Session) -> None:
        old = session.conn
        if old is not None and old is not conn:
            old.session = None
        session.conn = conn
        conn.session = session

    def _mark_ready(self, conn: _GatewayConn) -> None:
        conn.ready = True
        self.ready_count += 1
        self._changed()

    # ----------------------------------------------------------------------------------- REST plumbing

    def fail_requests(
        self, method: str, path_contains: str, status: int, count: int, *, code: int = 0, message: str = ""
    ) -> None:
        """Answer the next `count` matching requests with `status` (e.g. 503, as during a Discord outage), or
        with a Discord error `code` (e.g. 403 50013 Missing Permissions, 400 50083 thread archived)."""
        text = message or ("Service Unavailable" if status >= 500 else "Refused")
        self._outages.append([method, path_contains, status, count, code, text])

    def hold_requests(self, method: str, path_contains: str) -> asyncio.Event:
        """Matching requests wait (after being recorded) until the returned event is set."""
        release = asyncio.Event()
        self._holds.append((method, path_contains, release))
        return release

    def _outage(self, method: str, path: str) -> None:
        for outage in self._outages:
            if outage[3] > 0 and outage[0] == method and outage[1] in path:
                outage[3] -= 1
                raise _ApiError(outage[2], outage[4], f"{outage[2]}: {outage[5]}")

    async def _hold(self, method: str, path: str) -> None:
        for held_method, held_path, release in self._holds:
            if held_method == method and held_path in path:
                await release.wait()

    async def _rest_handler(self, request: web.Request) -> web.StreamResponse:
        at = time.monotonic()
        raw_path = request.rel_url.raw_path
        path = raw_path.split("/api/v10", 1)[1] or "/"
        method = request.method
        match = _match_route(method, path)
        body_error: _ApiError | None = None
        try:
            body = await self._read_body(request)
        except _ApiError as err:
            body, body_error = None, err
        template, handler_name, params = match if match else ("unknown", "", {})
        uses = self._bucket_uses(method, template, handler_name, params)
        record = RequestRecord(
            at=at, method=method, path=path, bucket_key=uses[-1].key if uses else "", json=body
        )
        self.requests.append(record)
        if self.latency:
            await asyncio.sleep(self.latency)
        await self._hold(method, path)
        interaction_route = handler_name.startswith(("webhook_", "interaction_"))
        status, payload, headers = 200, None, {"Via": "1.1 google"}
        try:
            if match is None:
                log.warning("fake discord: unknown route %s %s", method, path)
                self.unknown_routes.append(f"{method} {path}")
                raise _ApiError(404, 0, "404: Not Found")
            if not interaction_route and request.headers.get("Authorization") != f"Bot {self.token}":
                raise _ApiError(401, 0, "401: Unauthorized")
            if body_error is not None:
                raise body_error
            self._outage(method, path)
            if self.rate_limits:
                limited = self._take(uses, headers)
                if limited is not None:
                    status, payload = 429, limited
                    self._n429 += 1
            if status != 429:
                handler: Callable[..., Awaitable[Any]] = getattr(self, f"_r_{handler_name}")
                result = await handler(request, body, **params)
                if isinstance(result, tuple):
                    status, payload = result
                else:
                    payload = result
                    status = 204 if result is None else 200
        except _ApiError as err:
            status, payload = err.status, err.body()
        except (KeyError, ValueError, TypeError) as err:
            log.warning("fake discord: bad request %s %s: %r", method, path, err)
            status, payload = 400, {"code": 50035, "message": "Invalid Form Body", "errors": {}}
        record.status = status
        record.headers = {k: v for k, v in headers.items() if k.lower().startswith(("x-ratelimit", "retry"))}
        self._changed()
        if payload is None:
            return web.Response(status=status, headers=headers)
        # discord.py only JSON-decodes an exact "application/json" content type (no charset suffix).
        headers["Content-Type"] = "application/json"
        return web.Response(body=json.dumps(payload).encode(), status=status, headers=headers)

    @staticmethod
    async def _read_body(request: web.Request) -> Any:
        if not request.can_read_body:
            return None
        ctype = request.content_type
        if ctype.startswith("multipart/"):
            payload: Any = None
            reader = await request.multipart()
            while (part := await reader.next()) is not None:
                if isinstance(part, BodyPartReader) and part.name == "payload_json":
                    payload = json.loads(await part.text())
                else:
                    await part.release()  # file bytes are not kept; payload_json lists the attachments
            return payload
        raw = await request.read()
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise _ApiError(400, 50109, "The request body contains invalid JSON.") from None

    def _bucket_uses(
        self, method: str, template: str, handler: str, params: dict[str, str]
    ) -> list[_BucketUse]:
        uses: list[_BucketUse] = []
        interaction_route = handler.startswith(("webhook_", "interaction_"))
        if not interaction_route:
            uses.append(_BucketUse("global", "global", "", "global"))
        if template in _CHANNEL_MESSAGE_TEMPLATES and method in ("POST", "PATCH", "DELETE"):
            cid = params["channel_id"]
            uses.append(
                _BucketUse(
                    f"channel_messages:{cid}", "channel_messages", _bucket_hash("channel_messages"), "user"
                )
            )
        elif "/reactions" in template and method in ("PUT", "DELETE"):
            cid = params["channel_id"]
            uses.append(_BucketUse(f"reactions:{cid}", "reactions", _bucket_hash("reactions"), "user"))
        elif handler.startswith("webhook_"):
            token = params["token"]
            if handler in _MESSAGE_WRITE_HANDLERS:
                inter = self._interactions_by_token.get(token)
                if inter is not None:
                    # Interaction message writes share the channel's message budget (scope: shared).
                    uses.append(
                        _BucketUse(
                            f"channel_messages:{inter.channel_id}",
                            "channel_messages",
                            _bucket_hash("webhook"),
                            "shared",
                        )
                    )
            uses.append(_BucketUse(f"webhook:{token}", "webhook", _bucket_hash("webhook"), "user"))
        else:
            major = params.get("channel_id") or params.get("guild_id") or params.get("token") or ""
            family = f"{method} {template}"
            uses.append(_BucketUse(f"{family}:{major}", "default", _bucket_hash(family), "user"))
        return uses

    def _take(self, uses: list[_BucketUse], headers: dict[str, str]) -> dict[str, Any] | None:
        """Check every bucket; on success consume one from each and set headers of the tightest bucket.

        Returns the 429 body if any bucket is exhausted (then nothing is consumed)."""
        now = time.monotonic()
        windows: list[tuple[_BucketUse, _Window]] = []
        for use in uses:
            limit, window = (
                (self.global_limit, 1.0)
                if use.family == "global"
                else self.bucket_limits.get(use.family, self.bucket_limits["default"])
            )
            win = self._windows.get(use.key)
            if win is None or now >= win.reset_at:
                win = self._windows[use.key] = _Window(limit, 0, now + window)
            windows.append((use, win))
        blocked = [(use, win) for use, win in windows if win.count >= win.limit]
        if blocked:
            use, win = max(blocked, key=lambda uw: uw[1].reset_at)
            retry_after = max(win.reset_at - now, 0.001)
            is_global = use.family == "global"
            headers.update({"Retry-After": str(math.ceil(retry_after)), "X-RateLimit-Scope": use.scope})
            if is_global:
                headers["X-RateLimit-Global"] = "true"
            else:
                self._set_ratelimit_headers(headers, use, win, now)
            return {
                "message": "You are being rate limited.",
                "retry_after": round(retry_after, 3),
                "global": is_global,
                "code": 0,
            }
        for _, win in windows:
            win.count += 1
        route = [(use, win) for use, win in windows if use.family != "global"]
        if route:
            # Numbers of the tightest bucket, but always the route's own (stable) hash.
            tightest = min(route, key=lambda uw: (uw[1].limit - uw[1].count, -uw[1].reset_at))[1]
            self._set_ratelimit_headers(headers, route[-1][0], tightest, now)
        return None

    @staticmethod
    def _set_ratelimit_headers(headers: dict[str, str], use: _BucketUse, win: _Window, now: float) -> None:
        reset_after = max(win.reset_at - now, 0.0)
        headers.update(
            {
                "X-RateLimit-Limit": str(win.limit),
                "X-RateLimit-Remaining": str(max(win.limit - win.count, 0)),
                "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
                "X-RateLimit-Reset-After": f"{reset_after:.3f}",
                "X-RateLimit-Bucket": use.hash,
            }
        )

    # ----------------------------------------------------------------------------------- REST: misc

    async def _r_get_me(self, request: web.Request, body: Any) -> Any:
        return self._users[self.bot_user_id].payload() | {"verified": True, "mfa_enabled": False}

    async def _r_get_user(self, request: web.Request, body: Any, user_id: str) -> Any:
        user = self._users.get(int(user_id))
        if user is None:
            raise _ApiError(404, 10013, "Unknown User")
        return user.payload()

    async def _r_get_gateway(self, request: web.Request, body: Any) -> Any:
        return {"url": self.gateway_url}

    async def _r_get_gateway_bot(self, request: web.Request, body: Any) -> Any:
        return {
            "url": self.gateway_url,
            "shards": 1,
            "session_start_limit": {"total": 1000, "remaining": 1000, "reset_after": 0, "max_concurrency": 1},
        }

    async def _r_get_application(self, request: web.Request, body: Any) -> Any:
        return {
            "id": str(self.application_id),
            "name": "Streamcord",
            "description": "",
            "icon": None,
            "bot_public": True,
            "bot_require_code_grant": False,
            "verify_key": "0" * 64,
            "owner": {
                "id": str(self.application_id + 1),
                "username": "owner",
                "discriminator": "0",
                "avatar": None,
                "global_name": "owner",
            },
            "team": None,
            "flags": 1 << 23,
            "interactions_endpoint_url": None,
            "tags": [],
            "bot": self._users[self.bot_user_id].payload(),
        }

    async def _r_get_channel(self, request: web.Request, body: Any, channel_id: str) -> Any:
        return self._channel_payload(self._channel(channel_id))

    async def _r_typing(self, request: web.Request, body: Any, channel_id: str) -> Any:
        self._channel(channel_id)
        return None

    def _guild(self, guild_id: str) -> _Guild:
        guild = self._guilds.get(int(guild_id))
        if guild is None:
            raise _ApiError(404, 10004, "Unknown Guild")
        return guild

    async def _r_get_guild(self, request: web.Request, body: Any, guild_id: str) -> Any:
        return self._guild_payload(self._guild(guild_id))

    async def _r_get_guild_channels(self, request: web.Request, body: Any, guild_id: str) -> Any:
        return [self._channel_payload(self._channels[c]) for c in self._guild(guild_id).channels]

    async def _r_get_guild_roles(self, request: web.Request, body: Any, guild_id: str) -> Any:
        return list(self._guild(guild_id).roles.values())

    async def _r_get_member(self, request: web.Request, body: Any, guild_id: str, user_id: str) -> Any:
        guild = self._guild(guild_id)
        if int(user_id) not in guild.members:
            raise _ApiError(404, 10007, "Unknown Member")
        return self._member_payload(guild, int(user_id))

    # ----------------------------------------------------------------------------------- REST: commands

    def _check_app(self, application_id: str) -> None:
        if application_id != str(self.application_id):
            raise _ApiError(404, 10002, "Unknown Application")

    def _store_command(self, data: dict[str, Any], guild_id: str | None) -> dict[str, Any]:
        existing = next(
            (
                c
                for c in self.commands
                if c["name"] == data["name"]
                and c.get("type", 1) == data.get("type", 1)
                and c.get("guild_id") == guild_id
            ),
            None,
        )
        cmd = {
            "type": 1,
            "options": [],
            "default_member_permissions": None,
            "dm_permission": True,
            "nsfw": False,
            "contexts": None,
            "integration_types": [0],
            "description": "",
            **data,
            "id": existing["id"] if existing else str(self._snowflake()),
            "application_id": str(self.application_id),
            "version": str(self._snowflake()),
            "guild_id": guild_id,
        }
        if existing is not None:
            self.commands.remove(existing)
        self.commands.append(cmd)
        return cmd

    async def _r_get_commands(
        self, request: web.Request, body: Any, application_id: str, guild_id: str | None = None
    ) -> Any:
        self._check_app(application_id)
        return [c for c in self.commands if c.get("guild_id") == guild_id]

    async def _r_put_commands(
        self, request: web.Request, body: Any, application_id: str, guild_id: str | None = None
    ) -> Any:
        self._check_app(application_id)
        if not isinstance(body, list):
            raise _ApiError(400, 50035, "Invalid Form Body")
        keep = {(c["name"], c.get("type", 1)) for c in body}
        self.commands = [
            c for c in self.commands if c.get("guild_id") != guild_id or (c["name"], c.get("type", 1)) in keep
        ]
        stored = [self._store_command(c, guild_id) for c in body]
        self._changed()
        return stored

    async def _r_post_command(
        self, request: web.Request, body: Any, application_id: str, guild_id: str | None = None
    ) -> Any:
        self._check_app(application_id)
        cmd = self._store_command(body, guild_id)
        self._changed()
        return 201, cmd

    async def _r_delete_command(
        self,
        request: web.Request,
        body: Any,
        application_id: str,
        command_id: str,
        guild_id: str | None = None,
    ) -> Any:
        self._check_app(application_id)
        before = len(self.commands)
        self.commands = [
            c for c in self.commands if not (c["id"] == command_id and c.get("guild_id") == guild_id)
        ]
        if len(self.commands) == before:
            raise _ApiError(404, 10063, "Unknown application command")
        return None

    # ----------------------------------------------------------------------------------- REST: interactions

    async def _r_interaction_callback(
        self, request: web.Request, body: Any, interaction_id: str, token: str
    ) -> Any:
        inter = self.interactions.get(int(interaction_id)) if interaction_id.isdigit() else None
        now = time.monotonic()
        if (
            inter is None
            or inter.token != token
            or inter.responded_at is not None
            or now - inter.created_at > self.ack_deadline
        ):
            raise _unknown_interaction()
        rtype = int(body["type"])
        data = body.get("data") or {}
        channel = self._channel(inter.channel_id)
        msg: FakeMessage | None = None
        if rtype == 4:
            flags = int(data.get("flags") or 0) & ~FLAG_LOADING
            self._validate(
                data.get("content") or "",
                data.get("embeds") or [],
                prefix="data",
                empty_ok=_has_other_content(data),
            )
            msg = self._new_message(
                channel,
                self.bot_user_id,
                data.get("content") or "",
                data.get("embeds") or [],
                allowed_mentions=data.get("allowed_mentions"),
                flags=flags,
                interaction_id=inter.id,
                webhook=True,
                type_=20,
            )
        elif rtype == 5:
            flags = (int(data.get("flags") or 0) & FLAG_EPHEMERAL) | FLAG_LOADING
            msg = self._new_message(
                channel,
                self.bot_user_id,
                "",
                [],
                allowed_mentions=None,
                flags=flags,
                interaction_id=inter.id,
                webhook=True,
                type_=20,
            )
        elif rtype == 8:
            inter.choices = list(data.get("choices") or [])
        elif rtype not in (1, 6, 7, 9):
            raise _ApiError(
                400,
                50035,
                "Invalid Form Body",
                {"type": {"_errors": [{"code": "BASE_TYPE_CHOICES", "message": "Invalid type"}]}},
            )
        inter.response_type, inter.response_data, inter.responded_at = rtype, data, now
        if msg is not None:
            inter.message_id = msg.id
        self._changed()
        if request.query.get("with_response") not in ("1", "true", "True"):
            return None
        result: dict[str, Any] = {
            "interaction": {
                "id": str(inter.id),
                "type": inter.type,
                "activity_instance_id": None,
                "response_message_id": str(msg.id) if msg else None,
                "response_message_loading": rtype == 5,
                "response_message_ephemeral": bool(msg and msg.ephemeral),
            }
        }
        result["resource"] = {"type": rtype}
        if msg is not None:
            result["resource"]["message"] = self._message_payload(msg)
        return result

    def _webhook_interaction(self, application_id: str, token: str) -> FakeInteraction:
        inter = self._interactions_by_token.get(token)
        if application_id != str(self.application_id) or inter is None:
            raise _ApiError(404, 10015, "Unknown Webhook")
        if time.monotonic() - inter.created_at > self.token_ttl:
            raise _ApiError(401, 50027, "Invalid Webhook Token")
        return inter

    def _webhook_message(self, inter: FakeInteraction, message_id: str) -> FakeMessage:
        mid = inter.message_id if message_id == "@original" else int(message_id)
        msg = self.messages.get(mid) if mid is not None else None
        if msg is None or msg.interaction_id != inter.id or msg.deleted_at is not None:
            raise _unknown_message()
        return msg

    async def _r_webhook_execute(
        self, request: web.Request, body: Any, application_id: str, token: str
    ) -> Any:
        inter = self._webhook_interaction(application_id, token)
        if inter.responded_at is None:
            raise _ApiError(404, 10015, "Unknown Webhook")  # followups need an acknowledged interaction
        body = body or {}
        content, embeds = body.get("content") or "", body.get("embeds") or []
        self._validate(content, embeds, empty_ok=_has_other_content(body))
        original = self.messages.get(inter.message_id) if inter.message_id else None
        if (
            original is not None
            and original.flags & FLAG_LOADING
            and len(original.versions) == 1
            and original.deleted_at is None
        ):
            # Discord turns the first followup after a "thinking" defer into the deferred message itself.
            self._edit(original, body, clear_loading=True)
            msg = original
        else:
            flags = int(body.get("flags") or 0) & ~FLAG_LOADING
            msg = self._new_message(
                self._channel(inter.channel_id),
                self.bot_user_id,
                content,
                embeds,
                allowed_mentions=body.get("allowed_mentions"),
                flags=flags,
                interaction_id=inter.id,
                webhook=True,
            )
            inter.followup_ids.append(msg.id)
        if request.query.get("wait") in ("1", "true", "True"):
            return self._message_payload(msg)
        return None

    async def _r_webhook_get_message(
        self, request: web.Request, body: Any, application_id: str, token: str, message_id: str
    ) -> Any:
        inter = self._webhook_interaction(application_id, token)
        return self._message_payload(self._webhook_message(inter, message_id))

    async def _r_webhook_edit_message(
        self, request: web.Request, body: Any, application_id: str, token: str, message_id: str
    ) -> Any:
        inter = self._webhook_interaction(application_id, token)
        msg = self._webhook_message(inter, message_id)
        self._edit(msg, body or {}, clear_loading=True)
        return self._message_payload(msg)

    async def _r_webhook_delete_message(
        self, request: web.Request, body: Any, application_id: str, token: str, message_id: str
    ) -> Any:
        inter = self._webhook_interaction(application_id, token)
        self._delete(self._webhook_message(inter, message_id))
        return None

    # ----------------------------------------------------------------------------------- REST: messages

    async def _r_list_messages(self, request: web.Request, body: Any, channel_id: str) -> Any:
        channel = self._channel(channel_id)
        limit = min(int(request.query.get("limit", 50)), 100)
        before = int(request.query.get("before", 0)) or None
        after = int(request.query.get("after", 0)) or None
        live = [
            m
            for m in reversed(self._by_channel.get(channel.id, ()))
            if m.deleted_at is None
            and not m.ephemeral
            and (before is None or m.id < before)
            and (after is None or m.id > after)
        ]
        if after is not None and before is None:
            live = live[-limit:]
        return [self._message_payload(m) for m in live[:limit]]

    async def _r_get_message(self, request: web.Request, body: Any, channel_id: str, message_id: str) -> Any:
        self._channel(channel_id)
        return self._message_payload(self._message_in(int(channel_id), int(message_id)))

    async def _r_create_message(self, request: web.Request, body: Any, channel_id: str) -> Any:
        channel = self._channel(channel_id)
        body = body or {}
        content, embeds = body.get("content") or "", body.get("embeds") or []
        self._validate(content, embeds, empty_ok=_has_other_content(body))
        ref = body.get("message_reference") or {}
        reference_id = int(ref["message_id"]) if ref.get("message_id") else None
        missing = reference_id is not None and reference_id not in self.messages
        if missing and ref.get("fail_if_not_exists", True):
            raise _ApiError(
                400,
                50035,
                "Invalid Form Body",
                {
                    "message_reference": {
                        "_errors": [{"code": "REPLIES_UNKNOWN_MESSAGE", "message": "Unknown message"}]
                    }
                },
            )
        msg = self._new_message(
            channel,
            self.bot_user_id,
            content,
            embeds,
            allowed_mentions=body.get("allowed_mentions"),
            flags=int(body.get("flags") or 0) & ~FLAG_EPHEMERAL,
            reference_id=reference_id,
            type_=19 if reference_id is not None else 0,
        )
        return self._message_payload(msg)

    async def _r_edit_message(self, request: web.Request, body: Any, channel_id: str, message_id: str) -> Any:
        self._channel(channel_id)
        msg = self._message_in(int(channel_id), int(message_id))
        if msg.author_id != self.bot_user_id:
            raise _ApiError(403, 50005, "Cannot edit a message authored by another user")
        self._edit(msg, body or {})
        return self._message_payload(msg)

    async def _r_delete_message_route(
        self, request: web.Request, body: Any, channel_id: str, message_id: str
    ) -> Any:
        self._channel(channel_id)
        self._delete(self._message_in(int(channel_id), int(message_id)))
        return None

    # ----------------------------------------------------------------------------------- REST: reactions

    async def _r_add_own_reaction(
        self, request: web.Request, body: Any, channel_id: str, message_id: str, emoji: str
    ) -> Any:
        self._channel(channel_id)
        self._react(self._message_in(int(channel_id), int(message_id)), self.bot_user_id, emoji, add=True)
        return None

    async def _r_remove_own_reaction(
        self, request: web.Request, body: Any, channel_id: str, message_id: str, emoji: str
    ) -> Any:
        self._channel(channel_id)
        self._react(self._message_in(int(channel_id), int(message_id)), self.bot_user_id, emoji, add=False)
        return None

    async def _r_remove_user_reaction(
        self, request: web.Request, body: Any, channel_id: str, message_id: str, emoji: str, user_id: str
    ) -> Any:
        self._channel(channel_id)
        self._react(self._message_in(int(channel_id), int(message_id)), int(user_id), emoji, add=False)
        return None

    async def _r_get_reactions(
        self, request: web.Request, body: Any, channel_id: str, message_id: str, emoji: str
    ) -> Any:
        self._channel(channel_id)
        msg = self._message_in(int(channel_id), int(message_id))
        return [self._users[u].payload() for u in sorted(msg.reactions.get(emoji, ()))]

    async def _r_clear_reactions(
        self, request: web.Request, body: Any, channel_id: str, message_id: str
    ) -> Any:
        self._channel(channel_id)
        msg = self._message_in(int(channel_id), int(message_id))
        for emoji, users in msg.reactions.items():
            for uid in list(users):
                self._react(msg, uid, emoji, add=False)
        return None

    async def _r_clear_emoji_reactions(
        self, request: web.Request, body: Any, channel_id: str, message_id: str, emoji: str
    ) -> Any:
        self._channel(channel_id)
        msg = self._message_in(int(channel_id), int(message_id))
        for uid in list(msg.reactions.get(emoji, ())):
            self._react(msg, uid, emoji, add=False)
        return None
