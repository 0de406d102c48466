"""The messages sent to the model: system prompt, earlier turns, the new prompt (pure)."""

from __future__ import annotations

from dataclasses import dataclass

from bot.llm import ChatRequest
from bot.settings import ChannelSettings


@dataclass(frozen=True)
class Turn:
    role: str  # "user" or "assistant"
    content: str


def build_request(settings: ChannelSettings, prompt: str, history: list[Turn] | None = None) -> ChatRequest:
    turns = (history or [])[-settings.history :] if settings.history else []
    messages = [{"role": "system", "content": settings.system_prompt}] if settings.system_prompt else []
    messages += [{"role": t.role, "content": t.content} for t in turns]
    messages.append({"role": "user", "content": prompt})
    return ChatRequest(
        model=settings.model,
        messages=messages,
        temperature=settings.temperature,
        max_tokens=settings.max_tokens,
    )
