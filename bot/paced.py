"""One-off Discord requests sent through the pacer, so they share the budgets the streams spend.

Each declares the Route of the request discord.py will send; discord.HTTPException propagates to the caller.
"""

from __future__ import annotations

from datetime import datetime

import discord

from bot.discord_targets import NO_MENTIONS
from bot.streaming.pacer import Pacer
from bot.streaming.routes import Route


async def fetch_message(
    client: discord.Client, pacer: Pacer, channel_id: int, message_id: int
) -> discord.Message:
    message = client.get_partial_messageable(channel_id).get_partial_message(message_id)
    # Reads don't spend the channel's message budget, only the global one.
    return await pacer.run(message.fetch, Route.fetch_message(channel_id, message_id))


async def recent_messages(
    client: discord.Client, pacer: Pacer, channel_id: int, before_id: int, limit: int
) -> list[discord.Message]:
    """Up to `limit` (at most 100: one request) messages before `before_id`, newest first."""
    channel = client.get_partial_messageable(channel_id)

    async def read() -> list[discord.Message]:
        return [m async for m in channel.history(limit=min(limit, 100), before=discord.Object(before_id))]

    return await pacer.run(read, Route.list_messages(channel_id))


async def messages_between(
    client: discord.Client, pacer: Pacer, channel_id: int, after: datetime, before: datetime, limit: int
) -> list[discord.Message]:
    """Up to `limit` messages created between two moments, oldest first (a request per 100)."""
    channel = client.get_partial_messageable(channel_id)

    async def read() -> list[discord.Message]:
        return [m async for m in channel.history(limit=limit, after=after, before=before, oldest_first=True)]

    return await pacer.run(read, Route.list_messages(channel_id))


async def create_thread(
    pacer: Pacer, channel: discord.TextChannel, message_id: int, name: str
) -> discord.Thread:
    """A public thread started from a message (the thread's id is the message's)."""
    return await pacer.run(
        lambda: channel.create_thread(
            name=name, message=discord.Object(message_id), auto_archive_duration=1440
        ),
        Route.thread_from_message(channel.id, message_id),
    )


async def respond(pacer: Pacer, interaction: discord.Interaction, text: str) -> int | None:
    """Answer an interaction with a message; its id (None if Discord sent none). Interaction callbacks
    spend neither a channel's budget nor the global one."""
    response = await pacer.run(
        lambda: interaction.response.send_message(text, allowed_mentions=NO_MENTIONS),
        Route.interaction_callback(interaction.id, interaction.token),
    )
    return response.message_id


async def reply(pacer: Pacer, message: discord.Message | discord.PartialMessage, text: str) -> None:
    """Reply to ``message`` without pinging anyone."""
    await pacer.run(
        lambda: message.reply(text, allowed_mentions=NO_MENTIONS), Route.create_message(message.channel.id)
    )


async def send(client: discord.Client, pacer: Pacer, channel_id: int, text: str) -> None:
    """A new message in a channel, mentions disabled; spends the channel's message budget."""
    channel = client.get_partial_messageable(channel_id)
    await pacer.run(
        lambda: channel.send(text, allowed_mentions=NO_MENTIONS), Route.create_message(channel_id)
    )


async def edit(pacer: Pacer, message: discord.Message, content: str) -> None:
    """Replace a message's content, mentions disabled; spends its channel's message budget."""
    await pacer.run(
        lambda: message.edit(content=content, allowed_mentions=NO_MENTIONS),
        Route.edit_message(message.channel.id, message.id),
    )


async def remove_reaction(
    client: discord.Client, pacer: Pacer, channel_id: int, message_id: int, emoji: str, user_id: int
) -> None:
    message = client.get_partial_messageable(channel_id).get_partial_message(message_id)
    # Reactions have their own buckets, not the channel's message budget.
    await pacer.run(
        lambda: message.remove_reaction(emoji, discord.Object(user_id)),
        Route.reaction_remove(channel_id, message_id, emoji, user_id),
    )
