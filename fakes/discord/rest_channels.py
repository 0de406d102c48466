"""REST routes of guilds and channels: guild lookups, channel messages (list, get, send, edit, delete),
reactions and typing. All act as the bot user."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from fakes.discord.errors import ApiError, has_other_content, invalid_form_body, validate_message
from fakes.discord.messages import TYPE_DEFAULT, TYPE_REPLY, Messages
from fakes.discord.model import FLAG_EPHEMERAL, Channel, FakeMessage
from fakes.discord.payloads import Payloads
from fakes.discord.rest import Route
from fakes.discord.state import State

_MESSAGE = "/channels/{channel_id}/messages/{message_id}"


def writable(channel: Channel) -> Channel:
    """The channel, if messages may be posted or edited in it: an archived thread refuses."""
    if channel.archived:
        raise ApiError(400, 50083, "Thread is archived")
    return channel


class ChannelRoutes:
    def __init__(self, state: State, payloads: Payloads, messages: Messages) -> None:
        self._state = state
        self._payloads = payloads
        self._messages = messages

    def routes(self) -> list[Route]:
        return [
            ("GET", "/channels/{channel_id}", self.get_channel),
            ("GET", "/channels/{channel_id}/messages", self.list_messages),
            ("POST", "/channels/{channel_id}/messages", self.create_message),
            ("GET", _MESSAGE, self.get_message),
            ("PATCH", _MESSAGE, self.edit_message),
            ("DELETE", _MESSAGE, self.delete_message),
            ("PUT", _MESSAGE + "/reactions/{emoji}/@me", self.add_own_reaction),
            ("DELETE", _MESSAGE + "/reactions/{emoji}/@me", self.remove_reaction),
            ("DELETE", _MESSAGE + "/reactions/{emoji}/{user_id}", self.remove_reaction),
            ("GET", _MESSAGE + "/reactions/{emoji}", self.get_reactions),
            ("DELETE", _MESSAGE + "/reactions", self.clear_reactions),
            ("DELETE", _MESSAGE + "/reactions/{emoji}", self.clear_reactions),
            ("POST", "/channels/{channel_id}/typing", self.typing),
            ("GET", "/guilds/{guild_id}", self.get_guild),
            ("GET", "/guilds/{guild_id}/channels", self.get_guild_channels),
            ("GET", "/guilds/{guild_id}/roles", self.get_guild_roles),
            ("GET", "/guilds/{guild_id}/members/{user_id}", self.get_member),
        ]

    def _message(self, channel_id: str, message_id: str) -> FakeMessage:
        """A live, non-ephemeral message of that channel (Unknown Channel / Unknown Message otherwise)."""
        self._state.channel(channel_id)
        return self._state.message_in(int(channel_id), int(message_id))

    # ----------------------------------------------------------------------------------- guilds, channels

    async def get_channel(self, request: web.Request, body: Any, channel_id: str) -> Any:
        return self._payloads.channel(self._state.channel(channel_id))

    async def typing(self, request: web.Request, body: Any, channel_id: str) -> Any:
        self._state.channel(channel_id)
        return None

    async def get_guild(self, request: web.Request, body: Any, guild_id: str) -> Any:
        return self._payloads.guild(self._state.guild(guild_id))

    async def get_guild_channels(self, request: web.Request, body: Any, guild_id: str) -> Any:
        channels = self._state.channels
        return [self._payloads.channel(channels[c]) for c in self._state.guild(guild_id).channels]

    async def get_guild_roles(self, request: web.Request, body: Any, guild_id: str) -> Any:
        return list(self._state.guild(guild_id).roles.values())

    async def get_member(self, request: web.Request, body: Any, guild_id: str, user_id: str) -> Any:
        guild = self._state.guild(guild_id)
        if int(user_id) not in guild.members:
            raise ApiError(404, 10007, "Unknown Member")
        return self._payloads.member(guild, int(user_id))

    # ----------------------------------------------------------------------------------- messages

    async def list_messages(self, request: web.Request, body: Any, channel_id: str) -> Any:
        channel = self._state.channel(channel_id)
        limit = min(int(request.query.get("limit", 50)), 100)
        before = int(request.query.get("before", 0)) or None
        after = int(request.query.get("after", 0)) or None
        live = [
            m
            for m in reversed(self._state.by_channel.get(channel.id, ()))
            if m.deleted_at is None
            and not m.ephemeral
            and (before is None or m.id < before)
            and (after is None or m.id > after)
        ]
        if after is not None and before is None:
            live = live[-limit:]
        return [self._payloads.message(m) for m in live[:limit]]

    async def get_message(self, request: web.Request, body: Any, channel_id: str, message_id: str) -> Any:
        return self._payloads.message(self._message(channel_id, message_id))

    async def create_message(self, request: web.Request, body: Any, channel_id: str) -> Any:
        channel = writable(self._state.channel(channel_id))
        body = body or {}
        content, embeds = body.get("content") or "", body.get("embeds") or []
        validate_message(content, embeds, empty_ok=has_other_content(body))
        ref = body.get("message_reference") or {}
        reference_id = int(ref["message_id"]) if ref.get("message_id") else None
        missing = reference_id is not None and reference_id not in self._state.messages
        if missing and ref.get("fail_if_not_exists", True):
            raise invalid_form_body("message_reference", "REPLIES_UNKNOWN_MESSAGE", "Unknown message")
        msg = self._messages.create(
            channel,
            self._state.bot_user_id,
            content,
            embeds,
            allowed_mentions=body.get("allowed_mentions"),
            flags=int(body.get("flags") or 0) & ~FLAG_EPHEMERAL,
            reference_id=reference_id,
            type_=TYPE_REPLY if reference_id is not None else TYPE_DEFAULT,
            body=body,
        )
        return self._payloads.message(msg)

    async def edit_message(self, request: web.Request, body: Any, channel_id: str, message_id: str) -> Any:
        writable(self._state.channel(channel_id))
        msg = self._message(channel_id, message_id)
        if msg.author_id != self._state.bot_user_id:
            raise ApiError(403, 50005, "Cannot edit a message authored by another user")
        self._messages.edit(msg, body or {})
        return self._payloads.message(msg)

    async def delete_message(self, request: web.Request, body: Any, channel_id: str, message_id: str) -> Any:
        self._messages.delete(self._message(channel_id, message_id))
        return None

    # ----------------------------------------------------------------------------------- reactions

    async def add_own_reaction(
        self, request: web.Request, body: Any, channel_id: str, message_id: str, emoji: str
    ) -> Any:
        self._messages.react(self._message(channel_id, message_id), self._state.bot_user_id, emoji, add=True)
        return None

    async def remove_reaction(
        self,
        request: web.Request,
        body: Any,
        channel_id: str,
        message_id: str,
        emoji: str,
        user_id: str | None = None,
    ) -> Any:
        """The bot's own reaction (the .../@me route, no user id) or another user's."""
        user = self._state.bot_user_id if user_id is None else int(user_id)
        self._messages.react(self._message(channel_id, message_id), user, emoji, add=False)
        return None

    async def get_reactions(
        self, request: web.Request, body: Any, channel_id: str, message_id: str, emoji: str
    ) -> Any:
        msg = self._message(channel_id, message_id)
        return [self._payloads.user(u) for u in sorted(msg.reactions.get(emoji, ()))]

    async def clear_reactions(
        self, request: web.Request, body: Any, channel_id: str, message_id: str, emoji: str | None = None
    ) -> Any:
        """Every reaction, or (the .../{emoji} route) every one of that emoji."""
        self._messages.clear_reactions(self._message(channel_id, message_id), emoji)
        return None
