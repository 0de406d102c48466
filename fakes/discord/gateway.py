"""The gateway: websocket connections, sessions (IDENTIFY, RESUME with a replay backlog) and dispatch.

Every event goes to the live sessions of the shard it belongs to (sharding.py; intents permitting), in
order, with a per-session sequence number. One session per shard: a new IDENTIFY for a shard whose session
is still connected is refused with op 9; a dropped one is replaced. A dropped session keeps buffering for
SESSION_RESUME_GRACE so a RESUME replays what it missed.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import secrets
import time
from collections.abc import Callable, Collection
from typing import Any

from aiohttp import WSMsgType, web

from fakes.discord.model import DIRECT_MESSAGES_INTENT, MESSAGE_CONTENT_INTENT, FakeMessage
from fakes.discord.payloads import Payloads
from fakes.discord.sharding import CLOSE_INVALID_SHARD, Sharding, parse_shard, shard_of
from fakes.discord.state import State

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL_MS = 41250
SESSION_RESUME_GRACE = 60.0  # seconds a dropped session keeps buffering events for RESUME


class GatewayConn:
    """One websocket connection; frames go through a queue so dispatch order equals send order."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.queue: asyncio.Queue[str | Callable[[], None] | None] = asyncio.Queue()
        self.session: Session | None = None
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


class Session:
    def __init__(self, session_id: str, intents: int, shard: tuple[int, int]) -> None:
        self.id = session_id
        self.intents = intents
        self.shard = shard  # (shard_id, shard_count)
        self.seq = 0
        self.backlog: collections.deque[tuple[int, str]] = collections.deque(maxlen=2000)
        self.conn: GatewayConn | None = None
        self.detached_at = 0.0

    def dispatch(self, event: str, data: dict[str, Any]) -> None:
        self.seq += 1
        frame = json.dumps({"op": 0, "t": event, "s": self.seq, "d": data})
        self.backlog.append((self.seq, frame))
        if self.conn is not None:
            self.conn.queue.put_nowait(frame)

    def owns(self, guild_id: int | None) -> bool:
        shard_id, shard_count = self.shard
        return shard_of(guild_id, shard_count) == shard_id


class Gateway:
    def __init__(
        self, state: State, payloads: Payloads, url: Callable[[], str], changed: Callable[[], None]
    ) -> None:
        self._state = state
        self._payloads = payloads
        self._url = url
        self._changed = changed
        # Real Discord blanks content of others' messages unless MESSAGE_CONTENT intent or a mention/DM.
        self.enforce_message_content_intent = True
        self.conns: set[GatewayConn] = set()
        self.sessions: dict[str, Session] = {}
        self.ready_count = 0  # READY+GUILD_CREATEs fully written, across all connections
        self.sharding = Sharding()
        self.invalid_sessions = 0  # op 9 sent, for any reason
        self.down = False  # an outage: connections are dropped and new ones refused

    @property
    def connected(self) -> int:
        """Open gateway connections that have received READY (or RESUMED)."""
        return sum(1 for c in self.conns if c.ready and not c.ws.closed)

    def ready_shards(self) -> list[tuple[int, int]]:
        """(shard_id, shard_count) of every open connection that has received READY, sorted."""
        return sorted(
            c.session.shard for c in self.conns if c.ready and not c.ws.closed and c.session is not None
        )

    async def go_down(self, shards: Collection[int] | None = None) -> None:
        """An outage: drop every connection (or those of ``shards``; resumable, close code 4000) and refuse
        new ones until up()."""
        self.down = True
        for conn in list(self.conns):
            if shards is None or (conn.session is not None and conn.session.shard[0] in shards):
                await conn.ws.close(code=4000)

    def up(self) -> None:
        self.down = False

    async def close(self) -> None:
        for conn in list(self.conns):
            conn.queue.put_nowait(None)
            with contextlib.suppress(Exception):
                await conn.ws.close(code=1001)

    # ----------------------------------------------------------------------------------- dispatch

    def dispatch(self, event: str, data: dict[str, Any], *, intent: int = 0) -> None:
        """Send an event to the live sessions of its guild's shard (with `intent`, only to those that asked
        for it); the guild is the payload's ``guild_id``, none for DMs."""
        guild_id = int(data["guild_id"]) if data.get("guild_id") else None
        for session in self._live_sessions(guild_id):
            if not intent or session.intents & intent:
                session.dispatch(event, data)

    def dispatch_message(self, event: str, msg: FakeMessage) -> None:
        """MESSAGE_CREATE / MESSAGE_UPDATE, content blanked for sessions that may not read it."""
        if msg.ephemeral:
            return  # Discord never sends ephemeral messages over the gateway
        payload = self._payloads.message(msg, for_gateway=True)
        blank = dict(payload, content="", embeds=[], attachments=[], components=[])
        bot_id = self._state.bot_user_id
        visible = msg.author_id == bot_id or bot_id in msg.mentions or msg.guild_id is None
        for session in self._live_sessions(msg.guild_id):
            if msg.guild_id is None and not session.intents & DIRECT_MESSAGES_INTENT:
                continue
            hide = (
                self.enforce_message_content_intent
                and not visible
                and not session.intents & MESSAGE_CONTENT_INTENT
            )
            session.dispatch(event, blank if hide else payload)

    def _live_sessions(self, guild_id: int | None) -> list[Session]:
        """The guild's shard's sessions: connected ones plus recently dropped ones (so a RESUME can replay
        what it missed)."""
        return [s for s in self._sessions_alive() if s.owns(guild_id)]

    def _sessions_alive(self) -> list[Session]:
        cutoff = time.monotonic() - SESSION_RESUME_GRACE
        return [s for s in self.sessions.values() if s.conn is not None or s.detached_at > cutoff]

    def _invalid_session(self, conn: GatewayConn) -> None:
        self.invalid_sessions += 1
        conn.send({"op": 9, "d": False, "s": None, "t": None})

    # ----------------------------------------------------------------------------------- connections

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if self.down:
            return web.Response(status=503, text="gateway down")
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        conn = GatewayConn(ws)
        self.conns.add(conn)
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
                await self._op(conn, msg.get("op"), msg.get("d"))
        except ConnectionError:
            log.debug("gateway connection dropped")
        finally:
            if conn.session is not None and conn.session.conn is conn:
                conn.session.conn = None
                conn.session.detached_at = time.monotonic()
            conn.queue.put_nowait(None)
            self.conns.discard(conn)
            self._changed()
        return ws

    async def _op(self, conn: GatewayConn, op: Any, data: Any) -> None:
        if op == 1:
            conn.send({"op": 11, "d": None, "s": None, "t": None})
        elif op == 2:
            await self._identify(conn, data)
        elif op == 6:
            self._resume(conn, data)
        elif op == 8:
            self._request_members(conn, data)
        # op 3 (presence), 4 (voice) and anything else are accepted and ignored.

    async def _identify(self, conn: GatewayConn, data: Any) -> None:
        if data.get("token") != self._state.token:
            await conn.ws.close(code=4004, message=b"Authentication failed.")
            return
        shard = parse_shard(data.get("shard"))
        if shard is None:
            await conn.ws.close(code=CLOSE_INVALID_SHARD, message=b"Invalid shard.")
            return
        same_shard = [s for s in self._sessions_alive() if s.shard == shard]
        if any(s.conn is not None for s in same_shard) or not self.sharding.admit(shard[0]):
            self._invalid_session(conn)
            return
        for old in same_shard:  # a dropped session of this shard is replaced, never resumed
            del self.sessions[old.id]
        self.sharding.identifies.append(shard)
        session = Session(secrets.token_hex(16), int(data.get("intents", 0)), shard)
        self.sessions[session.id] = session
        self._attach(conn, session)
        guilds = [g for g in self._state.guilds.values() if session.owns(g.id)]
        session.dispatch("READY", self._payloads.ready(session.id, self._url(), guilds, shard))
        for guild in guilds:
            session.dispatch("GUILD_CREATE", self._payloads.guild_create(guild, session.intents))
        conn.queue.put_nowait(lambda: self._mark_ready(conn))

    def _resume(self, conn: GatewayConn, data: Any) -> None:
        session = self.sessions.get(data.get("session_id", ""))
        if session is None or data.get("token") != self._state.token:
            self._invalid_session(conn)
            return
        self._attach(conn, session)
        seq = data.get("seq") or 0
        for s, frame in session.backlog:
            if s > seq:
                conn.queue.put_nowait(frame)
        session.dispatch("RESUMED", {})
        conn.queue.put_nowait(lambda: self._mark_ready(conn))

    def _request_members(self, conn: GatewayConn, data: Any) -> None:
        guild = self._state.guilds.get(int(data.get("guild_id", 0)))
        if guild is not None and conn.session is not None:
            conn.session.dispatch(
                "GUILD_MEMBERS_CHUNK",
                {
                    "guild_id": str(guild.id),
                    "chunk_index": 0,
                    "chunk_count": 1,
                    "not_found": [],
                    "members": [self._payloads.member(guild, uid) for uid in guild.members],
                    "nonce": data.get("nonce"),
                },
            )

    def _attach(self, conn: GatewayConn, session: Session) -> None:
        old = session.conn
        if old is not None and old is not conn:
            old.session = None
        session.conn = conn
        conn.session = session

    def _mark_ready(self, conn: GatewayConn) -> None:
        conn.ready = True
        self.ready_count += 1
        self._changed()
