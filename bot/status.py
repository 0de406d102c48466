"""How an answer ended, and every status line the bot writes under one: built and recognised here only.

A status line is the last line of a reply that is the bot's note about the answer, not the answer: a final
footer (stopped, failed, interrupted, cut at the output limit) or a live line shown while streaming. History
sent back to the model drops it, so a new status line must be added here, where `split_status` sees it.
"""

from __future__ import annotations

import math
import re
from enum import StrEnum

from bot.model_retry import Failure, FailureKind
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
_THINKING = "💭 "
_CUT = "✂️ "
_TIMER = "⏱ "
_FILTERED = "🚫 "
_NOTE = "📎 "
_QUEUED = "⏳ "
_CONTEXT = "ℹ️ "  # what the model did not see of the conversation
OUTPUT_LIMIT = f'{_CUT}cut off at the output limit: reply "continue" to go on'
CONTENT_FILTER = f"{_FILTERED}stopped by the model server's content filter"
IMAGES_REFUSED = f"{_NOTE}this model can't read images: answered without them"
QUESTION_DELETED = f"{_STOPPED}stopped: the question was deleted"
INTERRUPTED_BY_RESTART = f"{_STOPPED}interrupted: the bot restarted"
_ANSWERED_BY = "*(answered by "
# Every status line starts with one of these; the last one is how earlier versions marked a cut-off answer.
_STARTS = (
    _STOPPED,
    _WARNING,
    _THINKING,
    _CUT,
    _TIMER,
    _FILTERED,
    _NOTE,
    _QUEUED,
    _CONTEXT,
    _ANSWERED_BY,
    "*(stopped at the output limit)*",
)

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


def thinking(seconds: float) -> str:
    """The live line while a reasoning model thinks."""
    return f"{_THINKING}thinking… {int(seconds)} s"


def thought_for(seconds: float) -> str:
    """What stays under the answer in the `summary` reasoning mode."""
    return f"{_THINKING}thought for {max(1, round(seconds))} s"


def too_long(pages: int) -> str:
    """The line under an answer stopped at MAX_REPLY_PAGES."""
    return f"{_CUT}stopped: the answer would need more than {pages} messages"


def too_slow(seconds: float) -> str:
    """The line under an answer stopped at LLM_DEADLINE."""
    return f"{_TIMER}stopped: the answer took longer than {int(seconds)} s"


def skipped_files(skipped: list[tuple[str, str]]) -> str:
    """One line naming the attachments the model did not get, and why."""
    return f"{_NOTE}skipped " + ", ".join(f"{name} ({reason})" for name, reason in skipped)


def cut_to_fit(names: list[str]) -> str:
    """One line naming the text files cut short to fit `context_tokens`."""
    return f"{_NOTE}cut short to fit the context: " + ", ".join(names)


def in_queue(ahead: int) -> str:
    """The live line of an answer waiting for the bot to have room for it."""
    return f"{_QUEUED}queued: {ahead} ahead" if ahead else f"{_QUEUED}queued: next"


def left_out(count: int) -> str:
    """The note under an answer whose oldest turns did not fit `context_tokens`."""
    return f"{_CONTEXT}{count} earlier messages left out to fit the context"


def retried_shorter(kept: int) -> str:
    """The note under an answer asked again with half the history after the model's context was full."""
    return f"{_CONTEXT}the conversation was too long for the model: retried with {kept} earlier messages"


def retrying(failure: Failure, retry: int, retries: int, delay: float) -> str:
    """The live line while an answer waits to retry the model."""
    when = f" in {math.ceil(delay)} s" if delay >= 1 else ""
    return f"{_WARNING}{_reason(failure)}: retrying{when} ({retry} of {retries})"


def falling_back(model: str, failure: Failure | None) -> str:
    """The live line while the fallback ``model`` is asked; ``failure`` None: the main model's circuit is
    open."""
    return f"{_WARNING}{_reason(failure)}: asking `{_code(model)}` instead"


def answered_by(model: str) -> str:
    """The line under an answer the fallback model wrote."""
    return f"{_ANSWERED_BY}the fallback model `{_code(model)}`)*"


def _reason(failure: Failure | None) -> str:
    """What went wrong, in plain words."""
    if failure is None:
        return "the model is unavailable"
    status = f" ({failure.status})" if failure.status else ""
    reasons = {
        FailureKind.RATE_LIMITED: "the model server is overloaded",
        FailureKind.SERVER_ERROR: "the model server failed",
        FailureKind.TIMEOUT: "the model server did not answer in time",
        FailureKind.CONNECTION: "could not reach the model server",
        FailureKind.STREAM_ERROR: "the model server reported an error",
        FailureKind.MODEL_NOT_FOUND: "the model is not available",
    }
    return reasons.get(failure.kind, "the model failed") + status


def _code(name: str) -> str:
    """A model name inside `code`: backticks would end it."""
    return name.replace("`", "'")


def split_status(content: str) -> tuple[str, str | None]:
    """One of the bot's messages as (the answer without the in-progress marker or its status lines, the
    status lines or None). An answer can carry more than one: who answered, then how it ended."""
    text = content.removesuffix(MARKER).rstrip()
    lines: list[str] = []
    while text:
        head, _, last = text.rpartition("\n")
        if not last.startswith(_STARTS):
            break
        lines.insert(0, last)
        text = head.rstrip()
    return text, "\n".join(lines) or None
