"""Answers cut off at the output limit, and the request that continues one (pure).

The cut-off text goes back to the model as its own turn, followed by the user's "continue", so the
continuation picks up where the answer stopped. Kept in memory: after a restart a "continue" reply is an
ordinary reply, whose history carries the cut-off text anyway."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, replace

from bot.attachments import without_images
from bot.llm import ChatRequest, Message
from bot.store.answers import AnswerRecord

CONTINUE_WORD = "continue"
CONTINUE_EMOJI = "⏩"
_KEEP = 1000  # recent cut-off answers remembered


@dataclass(frozen=True)
class CutOff:
    chat: ChatRequest  # what was asked
    text: str  # the answer, as far as it got
    user_id: int  # who asked: only they may continue it
    guild_id: int | None
    channel_id: int
    message_ids: tuple[int, ...]
    record: AnswerRecord | None = None  # where the continuation's pages are recorded


def is_continue(prompt: str) -> bool:
    return prompt.strip().rstrip(".!").strip().lower() == CONTINUE_WORD


def continue_request(cut_off: CutOff, prompt: str = CONTINUE_WORD) -> ChatRequest:
    turns: list[Message] = [
        {"role": "assistant", "content": cut_off.text},
        {"role": "user", "content": prompt},
    ]
    return replace(cut_off.chat, messages=[*cut_off.chat.messages, *turns])


class CutOffAnswers:
    """The most recent cut-off answers, found by any of their messages."""

    def __init__(self, keep: int = _KEEP) -> None:
        self._keep = keep
        self._by_message: OrderedDict[int, CutOff] = OrderedDict()

    def remember(self, cut_off: CutOff) -> None:
        """Kept without its images: a thousand answers' base64 pictures would be hundreds of MB, and the
        continuation needs the text the model wrote, not what it looked at."""
        cut_off = replace(cut_off, chat=without_images(cut_off.chat))
        for message_id in cut_off.message_ids:
            self._by_message[message_id] = cut_off
        while len(self._by_message) > self._keep:
            self._by_message.popitem(last=False)

    def find(self, message_id: int, user_id: int) -> CutOff | None:
        """The cut-off answer this message belongs to, if ``user_id`` asked it."""
        cut_off = self._by_message.get(message_id)
        return cut_off if cut_off is not None and cut_off.user_id == user_id else None

    def forget(self, cut_off: CutOff) -> None:
        """Continued: a second "continue" on the same answer starts nothing."""
        for message_id in cut_off.message_ids:
            self._by_message.pop(message_id, None)
