"""What the fake Discord knows: the application, users, guilds, channels, messages, interactions, commands.

Plain tables plus the lookups every part needs (answering Discord's "Unknown …" errors) and permission
resolution. Changing the world (world.py, messages.py, commands.py) also tells the gateway; this does not.
"""

from __future__ import annotations

import collections
import itertools
import time
from typing import Any

from fakes.discord.errors import ApiError, unknown_channel, unknown_message
from fakes.discord.model import (
    ADMINISTRATOR,
    ALL_PERMISSIONS,
    DISCORD_EPOCH_MS,
    DM_PERMISSIONS,
    Channel,
    FakeAttachment,
    FakeInteraction,
    FakeMessage,
    Guild,
    User,
)


class State:
    def __init__(self) -> None:
        self.token = "fake-bot-token"
        self._snowflake_counter = itertools.count()
        self.application_id = self.snowflake()
        self.bot_user_id = self.application_id  # Discord bots share their application's id
        self.users: dict[int, User] = {self.bot_user_id: User(self.bot_user_id, "Streamcord", bot=True)}
        self.guilds: dict[int, Guild] = {}
        self.channels: dict[int, Channel] = {}
        self.messages: dict[int, FakeMessage] = {}
        self.by_channel: dict[int, list[FakeMessage]] = collections.defaultdict(list)
        self.interactions: dict[int, FakeInteraction] = {}
        self.interactions_by_token: dict[str, FakeInteraction] = {}
        self.commands: list[dict[str, Any]] = []  # application commands as synced, global and per guild
        self.uploads: dict[int, FakeAttachment] = {}  # every file, by attachment id, for the CDN route
        self.cdn_base = ""  # set when the server listens: "http://127.0.0.1:PORT/attachments"

    def snowflake(self, *, shard: tuple[int, int] | None = None) -> int:
        """A new id (19 digits today); with ``shard`` ([shard_id, shard_count]), one whose guild events
        would reach that shard: its timestamp is moved up to the next millisecond that does."""
        ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
        if shard is not None:
            shard_id, shard_count = shard
            ms += (shard_id - ms) % shard_count
        return (ms << 22) | (next(self._snowflake_counter) & 0x3FFFFF)

    # ----------------------------------------------------------------------------------- lookups

    def channel(self, channel_id: int | str) -> Channel:
        try:
            return self.channels[int(channel_id)]
        except (KeyError, ValueError):
            raise unknown_channel() from None

    def guild(self, guild_id: int | str) -> Guild:
        guild = self.guilds.get(int(guild_id))
        if guild is None:
            raise ApiError(404, 10004, "Unknown Guild")
        return guild

    def message_in(self, channel_id: int, message_id: int) -> FakeMessage:
        msg = self.messages.get(message_id)
        # Ephemeral messages exist only for their interaction's webhook, never for channel routes.
        if msg is None or msg.channel_id != channel_id or msg.deleted_at is not None or msg.ephemeral:
            raise unknown_message()
        return msg

    def channel_messages(self, channel_id: int) -> list[FakeMessage]:
        return list(self.by_channel.get(channel_id, ()))

    # ----------------------------------------------------------------------------------- permissions

    def permissions(self, guild_id: int, user_id: int) -> int:
        guild = self.guilds[guild_id]
        perms = int(guild.roles[guild_id]["permissions"])
        for rid in guild.members.get(user_id, []):
            perms |= int(guild.roles[rid]["permissions"])
        return ALL_PERMISSIONS if perms & ADMINISTRATOR else perms

    def channel_permissions(self, channel_id: int, user_id: int) -> int:
        """A user's permissions in a channel, as Discord resolves them: guild roles, then the channel's
        @everyone, role and member overwrites. A thread resolves through its parent channel."""
        channel = self.channel(channel_id)
        if channel.guild_id is None:
            return DM_PERMISSIONS
        if channel.parent_id is not None:
            channel = self.channels[channel.parent_id]
        perms = self.permissions(channel.guild_id, user_id)
        if perms & ADMINISTRATOR:
            return perms
        guild = self.guilds[channel.guild_id]
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

    def upload(
        self,
        filename: str,
        data: bytes,
        content_type: str = "application/octet-stream",
        size: int | None = None,
    ) -> FakeAttachment:
        attachment = FakeAttachment(self.snowflake(), filename, data, content_type, size)
        self.uploads[attachment.id] = attachment
        return attachment
