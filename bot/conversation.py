"""The messages sent to the model: system prompt, earlier turns, the new prompt (pure)."""

from __future__ import annotations

from dataclasses import dataclass

from bot.llm import ChatRequest, ContentPart, Message
from bot.settings import ChannelSettings
from bot.status import split_status


@dataclass(frozen=True)
class Turn:
    role: str  # "user" or "assistant"
    content: str


def shown_answer(content: str) -> str:
    """The answer in one of the bot's messages, without the in-progress marker or a status line: the model
    should see what it said, not the bot's notes about it."""
    return split_status(content)[0]


def build_request(
    settings: ChannelSettings, prompt: str | list[ContentPart], history: list[Turn] | None = None
) -> ChatRequest:
    turns = (history or [])[-settings.history :] if settings.history else []
    messages: list[Message] = (
        [{"role": "system", "content": settings.system_prompt}] if settings.system_prompt else []
    )
    messages += [{"role": t.role, "content": t.content} for t in turns]
    messages.append({"role": "user", "content": prompt})
    return ChatRequest(
        model=settings.model,
        messages=messages,
        temperature=settings.temperature,
        max_tokens=settings.max_tokens,
        reasoning_effort=settings.reasoning_effort,
        fallback_model=settings.fallback_model,
    )
