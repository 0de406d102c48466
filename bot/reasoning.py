"""Inline reasoning: a leading `<think>…</think>` block in the content stream is the model's thinking, not
its answer (Ollama and llama.cpp with R1/Qwen3 send it this way). Pure code, fed one delta at a time; the
tags may be split across deltas at any character."""

from __future__ import annotations

OPEN = "<think>"
CLOSE = "</think>"

# States: before any visible text, inside the block, just after it (whitespace skipped), plain answer.
_START, _THINKING, _AFTER, _ANSWER = range(4)


class ThinkSplitter:
    """Splits content deltas into (reasoning, answer). Only a block that opens the content counts: a
    `<think>` later in an answer is answer text. Once the answer has begun, ``done`` is True and every
    later delta is answer: callers may then skip the splitter altogether."""

    __slots__ = ("_buffer", "_state")

    def __init__(self) -> None:
        self._state = _START
        self._buffer = ""  # text held back because it may be the start of a tag

    @property
    def done(self) -> bool:
        return self._state == _ANSWER

    def feed(self, delta: str) -> tuple[str, str]:
        """The reasoning and the answer text this delta completes (either may be empty)."""
        if self._state == _ANSWER:
            return "", delta
        text = self._buffer + delta
        self._buffer = ""
        if self._state == _START:
            head = text.lstrip()
            if len(head) < len(OPEN) and OPEN.startswith(head):
                self._buffer = text  # whitespace or a prefix of the opening tag: wait for more
                return "", ""
            if not head.startswith(OPEN):
                self._state = _ANSWER
                return "", text
            self._state = _THINKING
            text = head[len(OPEN) :]
        if self._state == _THINKING:
            end = text.find(CLOSE)
            if end < 0:
                keep = _partial_suffix(text, CLOSE)
                self._buffer = text[len(text) - keep :] if keep else ""
                return text[: len(text) - keep], ""
            self._state = _AFTER
            reasoning, answer = text[:end], self._after(text[end + len(CLOSE) :])
            return reasoning, answer
        return "", self._after(text)

    def flush(self) -> tuple[str, str]:
        """What is held back when the stream ends: an unclosed block is all reasoning."""
        held, self._buffer = self._buffer, ""
        if self._state == _THINKING:
            return held, ""
        return "", held

    def _after(self, text: str) -> str:
        """The answer after the block starts at its first visible character (models put blank lines)."""
        answer = text.lstrip()
        if answer:
            self._state = _ANSWER
        return answer


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest end of ``text`` that is a proper start of ``tag``."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:size]):
            return size
    return 0
