"""What shapes one answer beyond the model request: the bot's limits and the channel's display choices."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """Bounds on any answer, whatever the model server keeps sending (MAX_REPLY_PAGES, LLM_DEADLINE)."""

    max_pages: int = 8
    deadline: float = 600.0


@dataclass(frozen=True)
class AnswerOptions:
    reasoning: str = "hidden"  # the channel's `reasoning` setting: hidden, summary or file
    notes: tuple[str, ...] = ()  # status lines for under the answer, e.g. attachments skipped
