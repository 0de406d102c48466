"""An answer's accounting: its usage and in-flight rows, written before the model is asked and closed,
with retries, however the answer ends."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.circuit import CircuitOpen
from bot.db.retry import retried
from bot.llm import ChatRequest, Usage, message_text
from bot.status import Status
from bot.store.inflight import InflightStore
from bot.store.starts import AnswerStarts
from bot.store.usage import AnswerStart, UsageStore
from bot.streaming.observer import FinishedAnswer, StreamObserver
from bot.tokens import estimate_tokens

if TYPE_CHECKING:
    from bot.streaming.stream import Requester

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Tokens:
    prompt: int
    completion: int  # reasoning tokens included
    reasoning: int
    estimated: bool  # counted from the text, the server sent no usage


def tokens_spent(
    usage: Usage | None,
    error: Exception | None,
    chat: ChatRequest | None,
    deltas: int,
    reasoning_deltas: int,
) -> Tokens:
    """The server's count when it sent one, else an estimate from what was asked and streamed."""
    if usage is not None:
        return Tokens(usage.prompt_tokens, usage.completion_tokens, usage.reasoning_tokens, False)
    if isinstance(error, CircuitOpen):  # refused without asking the model: nothing was spent
        return Tokens(0, 0, 0, False)
    messages = chat.messages if chat is not None else []
    prompt = estimate_tokens("".join(message_text(m) for m in messages))
    # Servers send about one token a delta.
    return Tokens(prompt, deltas + reasoning_deltas, reasoning_deltas, True)


class AnswerLedger:
    """The usage and in-flight rows of one answer, from before the model is asked to the final edit."""

    def __init__(
        self,
        request_id: str,
        requester: Requester,
        usage: UsageStore,
        inflight: InflightStore,
        starts: AnswerStarts,
        observer: StreamObserver,
    ) -> None:
        self._request_id = request_id
        self._requester = requester
        self._starts = starts
        self._usage = usage
        self._inflight = inflight
        self._observer = observer
        self._started = time.monotonic()

    async def open(self, model: str) -> bool:
        """Write the usage and in-flight rows, together, before the model is asked: an answer nobody can
        account for or recover must not run. Whether they were written."""
        r = self._requester
        start = AnswerStart(self._request_id, r.guild_id, r.channel_id, r.user_id, model)
        if await self._starts.record(start):
            return True
        log.error("Request %s not started: its usage could not be recorded", self._request_id)
        return False

    async def close(
        self, status: Status, tokens: Tokens, *, model: str, first_token_at: float | None, error: str | None
    ) -> None:
        """Finish the usage row (retried: a passing lock must not lose it) and report the answer."""
        await retried(
            lambda: self._finish(status, tokens, model, first_token_at, error),
            f"usage of request {self._request_id}",
        )

    async def release(self) -> None:
        """The reply is final: drop the in-flight row (until then a crash leaves it for recovery)."""
        await retried(lambda: self._inflight.remove(self._request_id), f"in-flight {self._request_id}")

    async def _finish(
        self, status: Status, tokens: Tokens, model: str, first_token_at: float | None, error: str | None
    ) -> None:
        ttft = None if first_token_at is None else round((first_token_at - self._started) * 1000)
        await self._usage.finish(
            self._request_id,
            status=status,
            prompt_tokens=tokens.prompt,
            completion_tokens=tokens.completion,
            estimated=tokens.estimated,
            ttft_ms=ttft,
            duration_ms=round((time.monotonic() - self._started) * 1000),
            error=error,
            reasoning_tokens=tokens.reasoning,
            model=model,
        )
        answer = FinishedAnswer(
            self._requester, status.value, tokens.prompt, tokens.completion, model, tokens.reasoning
        )
        self._observer.answer_finished(answer)
        log.info(
            "Request %s %s: %d+%d tokens%s",
            self._request_id,
            status.value,
            tokens.prompt,
            tokens.completion,
            " (estimated)" if tokens.estimated else "",
        )
