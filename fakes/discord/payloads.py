"""The JSON shapes discord.py 2.7 reads, built from the fake's state (REST answers and gateway events)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fakes.discord.model import (
    CHANNEL_DM,
    DISCORD_EPOCH_MS,
    GUILD_MEMBERS_INTENT,
    Channel,
    FakeAttachment,
    FakeInteraction,
    FakeMessage,
    Guild,
    User,
)
from fakes.discord.state import State

APPLICATION_FLAGS = 1 << 23  # APPLICATION_COMMAND_BADGE, as Discord reports it for an app with commands


def iso(snowflake: int) -> str:
    ms = (snowflake >> 22) + DISCORD_EPOCH_MS
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat()


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def user(u: User) -> dict[str, Any]:
    return {
        "id": str(u.id),
        "username": u.name,
        "global_name": u.name,
        "discriminator": "0",
        "avatar": None,
        "bot": u.bot,
        "public_flags": 0,
        "flags": 0,
    }


def role(rid: int, name: str, permissions: int, position: int, *, managed: bool = False) -> dict[str, Any]:
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


def emoji(name_or_custom: str) -> dict[str, Any]:
    """ "🛑" is a unicode emoji; "name:123" a custom one."""
    name, sep, eid = name_or_custom.partition(":")
    if sep and eid.isdigit():
        return {"id": eid, "name": name, "animated": False}
    return {"id": None, "name": name_or_custom}


class Payloads:
    def __init__(self, state: State) -> None:
        self._state = state

    def user(self, user_id: int) -> dict[str, Any]:
        return user(self._state.users[user_id])

    def me(self) -> dict[str, Any]:
        return self.user(self._state.bot_user_id) | {"verified": True, "mfa_enabled": False}

    def application(self) -> dict[str, Any]:
        app_id = self._state.application_id
        return {
            "id": str(app_id),
            "name": "Streamcord",
            "description": "",
            "icon": None,
            "bot_public": True,
            "bot_require_code_grant": False,
            "verify_key": "0" * 64,
            "owner": {
                "id": str(app_id + 1),
                "username": "owner",
                "discriminator": "0",
                "avatar": None,
                "global_name": "owner",
            },
            "team": None,
            "flags": APPLICATION_FLAGS,
            "interactions_endpoint_url": None,
            "tags": [],
            "bot": self.user(self._state.bot_user_id),
        }

    def member(
        self,
        guild: Guild,
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
            data["user"] = self.user(user_id)
        if with_permissions:
            perms = (
                self._state.permissions(guild.id, user_id)
                if channel_id is None
                else self._state.channel_permissions(channel_id, user_id)
            )
            data["permissions"] = str(perms)
        return data

    def channel(self, channel: Channel) -> dict[str, Any]:
        if channel.type == CHANNEL_DM:
            assert channel.recipient_id is not None
            return {
                "id": str(channel.id),
                "type": CHANNEL_DM,
                "last_message_id": None,
                "recipients": [self.user(channel.recipient_id)],
                "flags": 0,
            }
        if channel.is_thread:
            created = iso(channel.id)
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
                    "archived": channel.archived,
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

    def guild(self, guild: Guild) -> dict[str, Any]:
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

    def guild_create(self, guild: Guild, intents: int) -> dict[str, Any]:
        channels = self._state.channels
        return self.guild(guild) | {
            "joined_at": guild.joined_at,
            "large": False,
            "unavailable": False,
            "member_count": len(guild.members),
            "voice_states": [],
            "presences": [],
            "threads": [self.channel(channels[t]) for t in guild.threads],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
            "channels": [self.channel(channels[c]) for c in guild.channels],
            # Without GUILD_MEMBERS Discord only sends the bot's own member.
            "members": [
                self.member(guild, uid)
                for uid in guild.members
                if intents & GUILD_MEMBERS_INTENT or uid == self._state.bot_user_id
            ],
        }

    def ready(
        self, session_id: str, gateway_url: str, guilds: list[Guild], shard: tuple[int, int]
    ) -> dict[str, Any]:
        return {
            "v": 10,
            "user": self.me(),
            "guilds": [{"id": str(g.id), "unavailable": True} for g in guilds],
            "shard": list(shard),
            "session_id": session_id,
            "session_type": "normal",
            "resume_gateway_url": gateway_url,
            "application": {"id": str(self._state.application_id), "flags": APPLICATION_FLAGS},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "geo_ordered_rtc_regions": [],
        }

    def message(self, msg: FakeMessage, *, for_gateway: bool = False) -> dict[str, Any]:
        state = self._state
        version = msg.versions[-1]
        data: dict[str, Any] = {
            "id": str(msg.id),
            "channel_id": str(msg.channel_id),
            "type": msg.type,
            "author": self.user(msg.author_id),
            "content": version.content,
            "embeds": version.embeds,
            "flags": version.flags,
            "timestamp": iso(msg.id),
            "edited_timestamp": now_iso() if len(msg.versions) > 1 else None,
            "tts": False,
            "mention_everyone": msg.mention_everyone,
            "mentions": [self.user(u) for u in msg.mentions if u in state.users],
            "mention_roles": [str(r) for r in msg.mention_roles],
            "attachments": [self.attachment(a) for a in version.attachments],
            "components": version.components,
            "pinned": False,
            "reactions": [
                {
                    "emoji": emoji(e),
                    "count": len(users),
                    "me": state.bot_user_id in users,
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
            guild = state.guilds[msg.guild_id]
            if msg.author_id in guild.members:
                data["member"] = self.member(guild, msg.author_id, with_user=False)
        if msg.webhook_id is not None:
            data["webhook_id"] = str(msg.webhook_id)
            data["application_id"] = str(state.application_id)
        if msg.reference_id is not None:
            data["message_reference"] = {
                "type": 0,
                "message_id": str(msg.reference_id),
                "channel_id": str(msg.channel_id),
            }
            if msg.guild_id is not None:
                data["message_reference"]["guild_id"] = str(msg.guild_id)
        if msg.interaction_id is not None:
            inter = state.interactions[msg.interaction_id]
            data["interaction_metadata"] = {
                "id": str(inter.id),
                "type": inter.type,
                "user": self.user(inter.user_id),
                "authorizing_integration_owners": {"0": str(inter.guild_id)} if inter.guild_id else {},
            }
        return data

    def attachment(self, attachment: FakeAttachment) -> dict[str, Any]:
        url = f"{self._state.cdn_base}/{attachment.id}/{attachment.filename}"
        return {
            "id": str(attachment.id),
            "filename": attachment.filename,
            "size": len(attachment.data) if attachment.size is None else attachment.size,
            "url": url,
            "proxy_url": url,
            "content_type": attachment.content_type,
        }

    def interaction(self, inter: FakeInteraction, data: dict[str, Any]) -> dict[str, Any]:
        """INTERACTION_CREATE for `inter` in a guild channel; `data` is the command, options and resolved."""
        assert inter.guild_id is not None
        state = self._state
        guild_id, channel_id = inter.guild_id, inter.channel_id
        # A thread's payload carries type 11 and parent_id, so discord.py builds a Thread even uncached.
        channel_data = self.channel(state.channels[channel_id])
        channel_data["permissions"] = str(state.channel_permissions(channel_id, inter.user_id))
        return {
            "id": str(inter.id),
            "application_id": str(state.application_id),
            "type": inter.type,
            "data": data,
            "guild_id": str(guild_id),
            "guild": {"id": str(guild_id), "locale": "en-US", "features": []},
            "channel_id": str(channel_id),
            "channel": channel_data,
            "member": self.member(
                state.guilds[guild_id], inter.user_id, with_permissions=True, channel_id=channel_id
            ),
            "app_permissions": str(state.channel_permissions(channel_id, state.bot_user_id)),
            "token": inter.token,
            "version": 1,
            "locale": "en-US",
            "guild_locale": "en-US",
            "entitlements": [],
            "authorizing_integration_owners": {"0": str(guild_id)},
            "context": 0,
            "attachment_size_limit": 10 * 1024 * 1024,
        }
