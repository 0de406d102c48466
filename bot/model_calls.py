"""One answer's calls to the model: the circuit first, retries within the time budget, then the fallback.
What happens on the way comes out as events for the reply to show; it knows nothing about Discord.

Circuits are kept per (base URL, model): behind a gateway (LiteLLM, OpenRouter) each model is its own
upstream, so one model's outage says little about another's, and a fallback must stay askable while the
primary is down. A fallback on another server would get its own circuit the same way."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass

from bot.circuit import CircuitBreaker, CircuitOpen, CircuitStatus
from bot.llm import BetweenReads, ChatRequest, Finish, LLMClient, Reasoning, Text
from bot.model_errors import ModelErrorLog
from bot.model_retry import Failure, RetryPolicy, classify

log = logging.getLogger(__name__)

REFUSED = "refused: circuit open"  # the error log's kind for questions the open circuit turned away


@dataclass(frozen=True)
class Retrying:
    """An attempt failed before any text; another starts after ``delay`` seconds."""

    model: str
    failure: Failure
    retry: int  # 1-based
    retries: int  # the most there will be
    delay: float


@dataclass(frozen=True)
class FallingBack:
    """The main model gave up before any text, or its circuit is open (``failure`` None): the fallback
    ``model`` is asked instead."""

    model: str
    failure: Failure | None


Event = Text | Reasoning | Finish | Retrying | FallingBack


@dataclass
class _Budget:
    """One answer's retry budget: it counts from the answer's first failure, whichever model met it, so the
    fallback retries only in what is left."""

    first_failure: float | None = None


class ModelCaller:
    def __init__(
        self,
        llm: LLMClient,
        *,
        policy: RetryPolicy,
        circuit_failures: int = 5,
        circuit_cool_down: float = 30.0,
        errors: ModelErrorLog | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._llm = llm
        self._policy = policy
        self._circuit_failures = circuit_failures
        self._circuit_cool_down = circuit_cool_down
        self.errors = errors or ModelErrorLog()
        self._clock = clock
        self._circuits: dict[tuple[str, str], CircuitBreaker] = {}

    def circuits(self) -> list[CircuitStatus]:
        """Every model's circuit, for a health endpoint."""
        return [circuit.status() for circuit in self._circuits.values()]

    async def answer(
        self, chat: ChatRequest, between_reads: BetweenReads | None = None
    ) -> AsyncGenerator[Event, None]:
        """Deltas, reasoning and one Finish, as ``LLMClient.stream_chat`` yields them (``between_reads``
        goes to it), with Retrying and FallingBack on the way. Raises the last failure (CircuitOpen when
        nothing was sent) if no model answered."""
        models = [chat.model]
        if chat.fallback_model and chat.fallback_model != chat.model:
            models.append(chat.fallback_model)
        failure: Failure | None = None
        budget = _Budget()
        for model in models:
            if model != chat.model:
                log.warning("Model %s: falling back to %s", chat.model, model)
                yield FallingBack(model, failure)
            answered = False
            try:
                one = self._one_model(dataclasses.replace(chat, model=model), budget, between_reads)
                async for event in one:
                    answered = answered or not isinstance(event, Retrying)
                    yield event
                return
            except CircuitOpen:
                if model == models[-1]:
                    raise
                failure = None  # nothing went wrong with a request: no reason to report
            except Exception as exc:
                failure = classify(exc, now=time.time())
                if answered or not failure.falls_back or model == models[-1]:
                    raise

    async def _one_model(
        self, chat: ChatRequest, budget: _Budget, between_reads: BetweenReads | None
    ) -> AsyncGenerator[Event, None]:
        circuit = self._circuit(chat.model)
        verdict = circuit.enter()
        if not verdict.allowed:
            self.errors.record(REFUSED)
            raise CircuitOpen(chat.model, verdict.retry_in)
        told = False  # the circuit has heard how this answer went
        try:
            async for event in self._attempts(chat, circuit, budget, between_reads):
                if not told and not isinstance(event, Retrying):
                    circuit.succeeded()
                    told = True
                yield event
        except Exception as exc:
            if not told and classify(exc, now=time.time()).transient:
                circuit.failed(probe=verdict.probe)
                told = True
            raise
        finally:
            if not told:  # stopped, or a failure that says nothing about the server's health
                circuit.abandoned(probe=verdict.probe)

    async def _attempts(
        self, chat: ChatRequest, circuit: CircuitBreaker, budget: _Budget, between_reads: BetweenReads | None
    ) -> AsyncGenerator[Event, None]:
        retry = 0
        while True:
            started = self._clock()
            # Retries must end inside the budget even if the server hangs instead of failing; a model's
            # first attempt (the fallback's too) is no retry.
            first_failure = budget.first_failure
            limit = None
            if retry and first_failure is not None:
                limit = first_failure + self._policy.budget - started
            answered = False
            try:
                async with contextlib.aclosing(self._llm.stream_chat(chat, between_reads)) as events:
                    async with asyncio.timeout(None if limit is None else max(limit, 0.0)):
                        first = await anext(events)
                    answered = True
                    yield first
                    async for event in events:
                        yield event
                return
            except Exception as exc:
                if answered:
                    raise
                failure = classify(exc, now=time.time())
                self.errors.record(failure.kind)
                now = self._clock()
                if budget.first_failure is None:
                    budget.first_failure = now
                first_failure = budget.first_failure
                retry += 1
                # An open circuit (or this answer being its probe) means: don't pile retries on the server.
                delay = None
                if not circuit.is_open:
                    delay = self._policy.delay(failure, retry, now - first_failure, now - started)
                if delay is None:
                    raise
            log.warning(
                "Model %s failed (%s%s): retry %d of %d in %.1f s",
                chat.model,
                failure.kind,
                f" {failure.status}" if failure.status else "",
                retry,
                self._policy.max_retries,
                delay,
            )
            yield Retrying(chat.model, failure, retry, self._policy.max_retries, delay)
            await asyncio.sleep(delay)

    def _circuit(self, model: str) -> CircuitBreaker:
        key = (self._llm.base_url, model)
        circuit = self._circuits.get(key)
        if circuit is None:
            circuit = self._circuits[key] = CircuitBreaker(
                f"{model} at {self._llm.base_url}",
                threshold=self._circuit_failures,
                cool_down=self._circuit_cool_down,
                clock=self._clock,
            )
        return circuit
