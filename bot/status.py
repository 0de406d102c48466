"""How an answer ended, and every status line the bot writes under one: built and recognised here only.

A status line is the last line of a reply that is the bot's note about the answer, not the answer: a final
footer (stopped, failed, interrupted, cut at the output limit) or a live line shown while streaming. History
sent back to the model drops it, so a new status line must be added here, where `split_status` sees it.
"""

from __future__ import annotations

import re
from enum import StrEnum

from bot.streaming.render import MARKER


class Status(StrEnum):
    """The outcome of a model request, as the usage table's status column stores it."""

    STREAMING = "streaming"  # still being written
    COMPLETED = "completed"
    STOPPED = "stopped"
    ERROR = "error"
    INTERRUPTED = "interrupted"


FINAL_STATUSES = frozenset(Status) - {Status.STREAMING}

_STOPPED = "⏹ "
_WARNING = "⚠️ "
OUTPUT_LIMIT = "*(stopped at the output limit)*"
QUESTION_DELETED = f"{_STOPPED}stopped: the question was deleted"
INTERRUPTED_BY_RESTART = f"{_STOPPED}interrupted: the bot restarted"
# Every status line starts with one of these.
_STARTS = (_STOPPED, _WARNING, OUTPUT_LIMIT)

# Characters Discord reads as Markdown (emphasis, code, spoiler, quote, link, mention) in the middle of a
# line; a backslash before any punctuation shows it as is.
_MARKDOWN = re.compile(r"([\\*_~`|<>\[\]()])")


def stopped_by(name: str) -> str:
    """The line under an answer someone stopped; the name is shown literally, whatever it contains."""
    escaped = _MARKDOWN.sub(r"\\\1", name)
    return f"{_STOPPED}stopped by {escaped}"


def failed(message: str) -> str:
    """The line under an answer the model server failed; ``message`` is a short user-facing sentence."""
    return f"{_WARNING}{message}"


UNDELIVERABLE = failed("I had to stop my answer: Discord no longer lets me post it there.")
NOT_RECORDED = failed("I can't record requests right now, so I didn't ask the model. Try again in a moment.")


def split_status(content: str) -> tuple[str, str | None]:
    """One of the bot's messages as (the answer without the in-progress marker or a status line, the status
    line or None)."""
    text = content.removesuffix(MARKER).rstrip()
    head, _, last = text.rpartition("\n")
    if last.startswith(_STARTS):
        return head.rstrip(), last
    return text, None
