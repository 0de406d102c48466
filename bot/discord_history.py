"""The conversation history's MessageFetcher, with discord.py: every read goes through the pacer."""

from __future__ import annotations

import logging

import discord

from bot import paced
from bot.attachments import AttachmentInfo
from bot.conversation import without_mention
from bot.history import ChatMessage
from bot.streaming.pacer import Pacer

log = logging.getLogger(__name__)


def attachment_infos(attachments: list[discord.Attachment]) -> list[AttachmentInfo]:
    """What Discord tells about a message's files, before anything is downloaded."""
    return [AttachmentInfo(a.id, a.filename, a.size, a.content_type, a.url) for a in attachments]


def chat_message(message: discord.Message, bot_id: int) -> ChatMessage:
    reference = message.reference
    return ChatMessage(
        id=message.id,
        author_id=message.author.id,
        author_name=message.author.display_name,
        content=without_mention(message.content, bot_id),
        reference_id=reference.message_id if reference is not None else None,
        from_bot=message.author.id == bot_id,
        attachments=tuple(attachment_infos(message.attachments)),
    )


class DiscordFetcher:
    def __init__(self, client: discord.Client, pacer: Pacer) -> None:
        self._client = client
        self._pacer = pacer

    @property
    def _bot_id(self) -> int:
        assert self._client.user is not None  # history is only read once connected
        return self._client.user.id

    async def fetch(self, channel_id: int, message_id: int) -> ChatMessage | None:
        try:
            message = await paced.fetch_message(self._client, self._pacer, channel_id, message_id)
        except discord.HTTPException as exc:
            # Deleted, or the bot may not read it: the conversation is used up to here.
            log.info("History stops at message %s: %s %s", message_id, exc.status, exc.code)
            return None
        return chat_message(message, self._bot_id)

    async def recent(self, channel_id: int, before_id: int, limit: int) -> list[ChatMessage]:
        try:
            messages = await paced.recent_messages(self._client, self._pacer, channel_id, before_id, limit)
        except discord.HTTPException as exc:
            log.info("Could not read channel %s's history: %s %s", channel_id, exc.status, exc.code)
            return []
        return [chat_message(m, self._bot_id) for m in messages]
