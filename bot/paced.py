"""One-off Discord requests sent through the pacer, so they share the budgets the streams spend.

Each declares the Route of the request discord.py will send; discord.HTTPException propagates to the caller.
"""

from __future__ import annotations

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
