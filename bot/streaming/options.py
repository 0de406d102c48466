"""What shapes one answer: its question (read before it is asked), the bot's limits and the channel's display
choices."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from bot.llm import ChatRequest


class ReasoningMode(StrEnum):
    """The channel's `reasoning` setting: what stays of a reasoning model's thinking."""

    HIDDEN = "hidden"  # only the live "thinking…" line while it lasts
    SUMMARY = "summary"  # "thought for 12 s" under the answer
    FILE = "file"  # the whole thinking attached as reasoning.md


@dataclass(frozen=True)
class Limits:
    """Bounds on any answer, whatever the model server keeps sending (MAX_REPLY_PAGES, LLM_DEADLINE)."""

    max_pages: int = 8
    deadline: float = 600.0


@dataclass(frozen=True)
class AnswerOptions:
    reasoning: ReasoningMode = ReasoningMode.HIDDEN


@dataclass(frozen=True)
class Asked:
    """What the model is asked, once everything it needs has been read."""

    chat: ChatRequest
    notes: tuple[str, ...] = ()  # status lines for under the answer, e.g. attachments skipped


class Unanswerable(Exception):
    """There is nothing to ask (no text, no readable file); str() says so to the user."""


class Question(Protocol):
    """An answer's question, which may need files downloaded or the conversation read before it is asked:
    the answer does that itself, so the reply shows (placeholder first) whatever the reading takes."""

    @property
    def model(self) -> str:
        """The model asked, known before anything is read."""
        ...

    @property
    def reads(self) -> bool:
        """Something must be downloaded or fetched first: the placeholder goes up at once."""
        ...

    async def ask(self) -> Asked: ...


@dataclass(frozen=True)
class Ready:
    """A question with nothing left to read (a continuation)."""

    asked: Asked

    @property
    def model(self) -> str:
        return self.asked.chat.model

    @property
    def reads(self) -> bool:
        return False

    async def ask(self) -> Asked:
        return self.asked
