"""Which channel a Discord location's settings belong to."""

from __future__ import annotations

import discord


def settings_channel_id(channel: discord.abc.Snowflake) -> int:
    """The id whose channel settings apply: a thread follows its parent channel, anything else itself."""
    if isinstance(channel, discord.Thread):
        return channel.parent_id
    return channel.id
