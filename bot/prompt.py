"""What one answer asks the model: the conversation fitted to the context budget, the note the answer shows
when something was left out, and one retry with half the history when the model's context is full anyway."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import TypeVar

from bot.conversation import Turn, render_turns, system_messages
from bot.llm import ChatRequest, Finish
from bot.model_retry import FailureKind, classify
from bot.settings import ChannelSettings
from bot.status import left_out, retried_shorter
from bot.tokens import message_tokens

log = logging.getLogger(__name__)

E = TypeVar("E")  # the events of an answer from the model


@dataclass
class Prompt:
    model: str
    temperature: float
    max_tokens: int | None
    fallback_model: str | None
    system: list[dict[str, str]]
    history: list[dict[str, str]]  # earlier turns, oldest first, already within the budget
    question: dict[str, str]
    left_out: int = 0  # earlier turns dropped for the budget (or by the retry)
    retried: bool = False

    @property
    def request(self) -> ChatRequest:
        return ChatRequest(
            model=self.model,
            messages=[*self.system, *self.history, self.question],
            temperature=self.temperature,
            max_tokens=self.max_tokens,
            fallback_model=self.fallback_model,
        )

    def note(self) -> str | None:
        """The status line saying what the model did not see, if anything."""
        if self.retried:
            return retried_shorter(len(self.history))
        if self.left_out:
            return left_out(self.left_out)
        return None

    async def stream(self, ask: Callable[[ChatRequest], AsyncGenerator[E, None]]) -> AsyncGenerator[E, None]:
        """The events of ``ask(request)``; if the server says the context is full before any text, ask once
        more with the older half of the history left out. Closing this closes the model's stream at once."""
        while True:
            answered = False
            try:
                async with contextlib.aclosing(ask(self.request)) as events:
                    async for event in events:
                        answered = answered or isinstance(event, str | Finish)
                        yield event
                return
            except Exception as exc:
                if answered or self.retried or not self.history or not _context_full(exc):
                    raise
            self._halve_history()

    def _halve_history(self) -> None:
        keep = len(self.history) // 2
        log.info(
            "Context too long for model %s: retrying with %d of %d earlier messages",
            self.model,
            keep,
            len(self.history),
        )
        self.left_out += len(self.history) - keep
        self.history = self.history[len(self.history) - keep :]
        self.retried = True


def build_prompt(
    settings: ChannelSettings, question: Turn, history: list[Turn], *, model: str | None = None
) -> Prompt:
    """The system prompt and the question always go; earlier turns are kept newest first while they fit
    `context_tokens`, so the oldest are the ones left out."""
    turns = history[-settings.history :] if settings.history else []
    *past, asked = render_turns([*turns, question])
    system = system_messages(settings)
    room = settings.context_tokens - sum(message_tokens(m) for m in [*system, asked])
    kept = 0
    for message in reversed(past):
        room -= message_tokens(message)
        if room < 0:
            break
        kept += 1
    return Prompt(
        model=model or settings.model,
        temperature=settings.temperature,
        max_tokens=settings.max_tokens,
        fallback_model=settings.fallback_model,
        system=system,
        history=past[len(past) - kept :],
        question=asked,
        left_out=len(past) - kept,
    )


def _context_full(exc: Exception) -> bool:
    return classify(exc, now=time.time()).kind is FailureKind.CONTEXT_LENGTH
