"""Token counts estimated without a tokenizer (pure)."""

from __future__ import annotations

import math

from bot.llm import Message, message_text

# Chat formats wrap each message in a few tokens of their own (role, separators).
MESSAGE_OVERHEAD = 4
CHARS_PER_TOKEN = 4


def estimate_tokens(text: str) -> int:
    """About four characters a token: the usual rule of thumb when the server sends no usage. Close enough
    for a budget with headroom, and costs nothing on a 30-turn chain; a real tokenizer would tie the bot to
    one model family."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def message_tokens(message: Message) -> int:
    """A chat message's text (images are not counted), its speaker's name and the format's overhead."""
    return (
        MESSAGE_OVERHEAD + estimate_tokens(message_text(message)) + estimate_tokens(message.get("name", ""))
    )
