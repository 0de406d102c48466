"""One-off Discord requests sent through the pacer, so they share the budgets the streams spend.

Each builds its route key the way the pacer learns buckets; discord.HTTPException propagates to the caller.
"""

from __future__ import annotations

import discord

from bot.discord_targets import NO_MENTIONS
from bot.streaming.pacer import Pacer
from bot.streaming.routes import route_key


async def fetch_message(
    client: discord.Client, pacer: Pacer, channel_id: int, message_id: int
) -> discord.Message:
    message = client.get_partial_messageable(channel_id).get_partial_message(message_id)
    path = f"/channels/{channel_id}/messages/{message_id}"
    # Reads don't spend the channel's message budget, only the global one.
    return await pacer.run(message.fetch, channel_id=None, route=route_key("GET", path), uses_global=True)


async def reply(pacer: Pacer, message: discord.Message, text: str) -> None:
    """Reply to ``message`` without pinging anyone."""
    channel_id = message.channel.id
    await pacer.run(
        lambda: message.reply(text, allowed_mentions=NO_MENTIONS),
        channel_id=channel_id,
        route=route_key("POST", f"/channels/{channel_id}/messages"),
        uses_global=True,
    )


async def send(client: discord.Client, pacer: Pacer, channel_id: int, text: str) -> None:
    """A new message in a channel, mentions disabled; spends the channel's message budget."""
    channel = client.get_partial_messageable(channel_id)
    await pacer.run(
        lambda: channel.send(text, allowed_mentions=NO_MENTIONS),
        channel_id=channel_id,
        route=route_key("POST", f"/channels/{channel_id}/messages"),
        uses_global=True,
    )


async def edit(pacer: Pacer, message: discord.Message, content: str) -> None:
    """Replace a message's content, mentions disabled; spends its channel's message budget."""
    channel_id = message.channel.id
    await pacer.run(
        lambda: message.edit(content=content, allowed_mentions=NO_MENTIONS),
        channel_id=channel_id,
        route=route_key("PATCH", f"/channels/{channel_id}/messages/{message.id}"),
        uses_global=True,
    )


async def remove_reaction(
    client: discord.Client, pacer: Pacer, channel_id: int, message_id: int, emoji: str, user_id: int
) -> None:
    message = client.get_partial_messageable(channel_id).get_partial_message(message_id)
    path = f"/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/{user_id}"
    # Reactions have their own buckets, not the channel's message budget.
    await pacer.run(
        lambda: message.remove_reaction(emoji, discord.Object(user_id)),
        channel_id=None,
        route=route_key("DELETE", path),
        uses_global=True,
    )
