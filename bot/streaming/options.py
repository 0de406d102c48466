"""What shapes one answer beyond the model request: the bot's limits and the channel's display choices."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


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
    notes: tuple[str, ...] = ()  # status lines for under the answer, e.g. attachments skipped
