"""Status lines (issue 11 part; merged with issue 9's bot/status.py)."""

from __future__ import annotations

_THINKING = "💭 "
_CUT = "✂️ "
_TIMER = "⏱ "
_FILTERED = "🚫 "
_NOTE = "📎 "

CUT_OFF = f'{_CUT}cut off at the output limit: reply "continue" to go on'
CONTENT_FILTER = f"{_FILTERED}stopped by the model server's content filter"
IMAGES_REFUSED = f"{_NOTE}this model can't read images: answered without them"


def thinking(seconds: float) -> str:
    """The live line while a reasoning model thinks."""
    return f"{_THINKING}thinking… {int(seconds)} s"


def thought_for(seconds: float) -> str:
    """What stays under the answer in the `summary` reasoning mode."""
    return f"{_THINKING}thought for {max(1, round(seconds))} s"


def too_long(pages: int) -> str:
    return f"{_CUT}stopped: the answer would need more than {pages} messages"


def too_slow(seconds: float) -> str:
    return f"{_TIMER}stopped: the answer took longer than {int(seconds)} s"


def skipped_files(skipped: list[tuple[str, str]]) -> str:
    """One line naming the attachments the model did not get, and why."""
    return f"{_NOTE}skipped " + ", ".join(f"{name} ({reason})" for name, reason in skipped)
