"""REST routes that open threads: from a message, or without one. Both act as the bot user."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from fakes.discord.errors import ApiError, invalid_form_body
from fakes.discord.model import CHANNEL_TEXT, Channel
from fakes.discord.payloads import Payloads
from fakes.discord.rest import Route
from fakes.discord.state import State
from fakes.discord.world import World

THREAD_NAME_MAX = 100


class ThreadRoutes:
    def __init__(self, state: State, payloads: Payloads, world: World) -> None:
        self._state = state
        self._payloads = payloads
        self._world = world

    def routes(self) -> list[Route]:
        return [
            ("POST", "/channels/{channel_id}/threads", self.create_thread),
            ("POST", "/channels/{channel_id}/messages/{message_id}/threads", self.create_thread_from_message),
        ]

    async def create_thread(self, request: web.Request, body: Any, channel_id: str) -> Any:
        return self._open(self._state.channel(channel_id), body, self._state.snowflake())

    async def create_thread_from_message(
        self, request: web.Request, body: Any, channel_id: str, message_id: str
    ) -> Any:
        parent = self._state.channel(channel_id)
        msg = self._state.message_in(parent.id, int(message_id))
        if msg.id in self._state.channels:
            raise ApiError(400, 160004, "A thread has already been created for this message")
        # A thread started from a message takes the message's id, as on Discord.
        return self._open(parent, body, msg.id)

    def _open(self, parent: Channel, body: Any, thread_id: int) -> Any:
        if parent.type != CHANNEL_TEXT or parent.guild_id is None:
            raise ApiError(400, 50024, "Cannot execute action on this channel type")
        name = str((body or {}).get("name") or "")
        if not 1 <= len(name) <= THREAD_NAME_MAX:
            raise invalid_form_body(
                "name", "BASE_TYPE_BAD_LENGTH", f"Must be between 1 and {THREAD_NAME_MAX}."
            )
        guild = self._state.guilds[parent.guild_id]
        thread = self._world.open_thread(guild, parent.id, name, self._state.bot_user_id, thread_id)
        return self._payloads.channel(thread)
