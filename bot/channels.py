"""Which channel a Discord location's settings belong to, and the roles a member's access depends on."""

from __future__ import annotations

import discord


def settings_channel_id(channel: discord.abc.Snowflake) -> int:
    """The id whose channel settings apply: a thread follows its parent channel, anything else itself."""
    if isinstance(channel, discord.Thread):
        return channel.parent_id
    return channel.id


def role_ids(user: discord.User | discord.Member | None) -> list[int]:
    """The member's roles in the server (for allowed_roles, blocked_roles, role_quotas); none in DMs."""
    return [role.id for role in user.roles] if isinstance(user, discord.Member) else []
