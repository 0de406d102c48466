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


async def recent_messages(
    client: discord.Client, pacer: Pacer, channel_id: int, before_id: int, limit: int
) -> list[discord.Message]:
    """Up to `limit` (at most 100: one request) messages before `before_id`, newest first."""
    channel = client.get_partial_messageable(channel_id)

    async def read() -> list[discord.Message]:
        return [m async for m in channel.history(limit=min(limit, 100), before=discord.Object(before_id))]

    path = f"/channels/{channel_id}/messages"
    return await pacer.run(read, channel_id=None, route=route_key("GET", path), uses_global=True)


async def create_thread(
    pacer: Pacer, channel: discord.TextChannel, message_id: int, name: str
) -> discord.Thread:
    """A public thread started from a message (the thread's id is the message's)."""
    path = f"/channels/{channel.id}/messages/{message_id}/threads"
    return await pacer.run(
        lambda: channel.create_thread(
            name=name, message=discord.Object(message_id), auto_archive_duration=1440
        ),
        channel_id=None,
        route=route_key("POST", path),
        uses_global=True,
    )


async def respond(pacer: Pacer, interaction: discord.Interaction, text: str) -> int | None:
    """Answer an interaction with a message; its id (None if Discord sent none). Interaction callbacks
    spend neither a channel's budget nor the global one."""
    path = f"/interactions/{interaction.id}/{interaction.token}/callback"
    response = await pacer.run(
        lambda: interaction.response.send_message(text, allowed_mentions=NO_MENTIONS),
        channel_id=None,
        route=route_key("POST", path),
        uses_global=False,
    )
    return response.message_id


async def reply(pacer: Pacer, message: discord.Message, text: str) -> None:
    """Reply to ``message`` without pinging anyone."""
    channel_id = message.channel.id
    await pacer.run(
        lambda: message.reply(text, allowed_mentions=NO_MENTIONS),
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
