"""The messages sent to the model: system prompt, earlier turns, the new prompt (pure)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.attachments import AttachmentInfo
from bot.llm import ContentPart, Message
from bot.settings import ChannelSettings
from bot.status import split_status
from bot.streaming.render import CLOSE, FENCE

# OpenAI's `name` field accepts only these characters.
_NAME_CHARS = re.compile(r"[^a-zA-Z0-9_-]+")
_NAME_MAX = 64


@dataclass(frozen=True)
class Turn:
    role: str  # "user" or "assistant"
    content: str | list[ContentPart]  # a list only for a question with images
    speaker: str | None = None  # a user turn's display name
    attachments: tuple[AttachmentInfo, ...] = ()  # an earlier turn's files, not yet read into content


def shown_answer(content: str) -> str:
    """The answer in one of the bot's messages, without the in-progress marker or a status line: the model
    should see what it said, not the bot's notes about it."""
    return split_status(content)[0]


def join_pages(pages: list[str]) -> str:
    """One answer's text from its pages: a code block closed at a page's end and reopened at the next
    page's start is joined again. Discord trims the whitespace a page ended with; the renderer cuts in a
    page's second half at a paragraph break, else a line break, else a space, so the same rule puts back
    the likeliest one."""
    text = previous = ""
    for page in pages:
        if text.endswith(CLOSE) and page.startswith(FENCE):
            text, page = text.removesuffix(CLOSE), page.partition("\n")[2]
        if text and not text[-1].isspace():
            text += _cut_whitespace(text[-len(previous) // 2 :])
        text += page
        previous = page
    return text


def _cut_whitespace(second_half: str) -> str:
    if "\n\n" in second_half:
        return "\n\n"
    return "\n" if "\n" in second_half else " "


def without_mention(content: str, bot_id: int) -> str:
    """A user's message without the @mention that addressed the bot."""
    return content.replace(f"<@{bot_id}>", "").replace(f"<@!{bot_id}>", "").strip()


def openai_name(speaker: str, fallback: str) -> str:
    """A display name as OpenAI's `name` field accepts it (^[a-zA-Z0-9_-]{1,64}$)."""
    name = _NAME_CHARS.sub("_", speaker).strip("_")[:_NAME_MAX]
    return name or fallback


def render_turns(turns: list[Turn]) -> list[Message]:
    """Chat messages for the turns. Every user turn carries its speaker in `name`; once two people share a
    conversation, a "display name: " prefix says it too, since many servers ignore `name`."""
    speakers = {t.speaker for t in turns if t.role == "user" and t.speaker}
    messages: list[Message] = []
    for turn in turns:
        message: Message = {"role": turn.role, "content": turn.content}
        if turn.role == "user" and turn.speaker:
            message["name"] = openai_name(turn.speaker, "user")
            if len(speakers) > 1:
                message["content"] = _prefixed(f"{turn.speaker}: ", turn.content)
        messages.append(message)
    return messages


def _prefixed(prefix: str, content: str | list[ContentPart]) -> str | list[ContentPart]:
    if isinstance(content, str):
        return prefix + content
    return [{"type": "text", "text": prefix.rstrip()}, *content]


def system_messages(settings: ChannelSettings) -> list[Message]:
    return [{"role": "system", "content": settings.system_prompt}] if settings.system_prompt else []
