"""One answer: read deltas from the model, keep the text, show it, and account for it however it ends."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

import openai

from bot.attachments import has_images, without_images
from bot.db.retry import FAILURES
from bot.llm import ChatRequest, Finish, Reasoning, Text, describe_error
from bot.model_calls import FallingBack, ModelCaller, Retrying
from bot.model_retry import refuses_images
from bot.prompt import context_full, halved_history
from bot.status import (
    CONTENT_FILTER,
    IMAGES_REFUSED,
    NOT_RECORDED,
    OUTPUT_LIMIT,
    UNDELIVERABLE,
    Status,
    answered_by,
    failed,
    falling_back,
    in_queue,
    retried_shorter,
    retrying,
    too_long,
    too_slow,
)
from bot.store.answers import AnswerRecord, AnswersStore
from bot.store.inflight import InflightStore
from bot.store.starts import AnswerStarts
from bot.store.usage import UsageStore
from bot.streaming.accounting import AnswerLedger, tokens_spent
from bot.streaming.display import ReplyDisplay
from bot.streaming.intake import Admission, Intake
from bot.streaming.observer import NO_OBSERVER, StreamObserver
from bot.streaming.options import AnswerOptions, Limits, Question, ReasoningMode, Unanswerable
from bot.streaming.pacer import Pacer
from bot.streaming.page_limit import PageLimit
from bot.streaming.target import FileUpload, ReplyTarget
from bot.streaming.thinking import Thinking

log = logging.getLogger(__name__)

FINAL_EDIT_TIMEOUT = 30.0
REASONING_FILE = "reasoning.md"


@dataclass(frozen=True)
class Requester:
    user_id: int
    guild_id: int | None
    channel_id: int


@dataclass(frozen=True)
class StopRequest:
    status: Status
    footer: str
    reply_gone: bool = False  # the reply was deleted: nothing left to edit
    error: str | None = None  # for the usage row: why it stopped, when that was a failure


class ReplyStream:
    # Slots: a thousand answers at once each hold one (their attributes' dict cost more than a kilobyte).
    __slots__ = (
        "_admission",
        "_answered",
        "_answers",
        "_consumer",
        "_deltas",
        "_finish",
        "_first_token_at",
        "_has_slot",
        "_inflight",
        "_intake",
        "_ledger",
        "_limits",
        "_model",
        "_models",
        "_notes",
        "_options",
        "_over",
        "_overrun",
        "_pages",
        "_reasoning_deltas",
        "_recorded",
        "_stop",
        "_thinking",
        "_trim",
        "_trouble_shown",
        "chat",
        "display",
        "question",
        "record",
        "request_id",
        "requester",
        "target",
        "text",
    )

    def __init__(
        self,
        *,
        request_id: str,
        question: Question,
        requester: Requester,
        target: ReplyTarget,
        models: ModelCaller,
        pacer: Pacer,
        usage: UsageStore,
        inflight: InflightStore,
        starts: AnswerStarts,
        intake: Intake,
        limits: Limits,
        options: AnswerOptions,
        observer: StreamObserver = NO_OBSERVER,
        answers: AnswersStore,
        record: AnswerRecord | None = None,
    ) -> None:
        self.request_id = request_id
        self._answers = answers
        self.record = record  # None: nobody can reply to this answer (ephemeral)
        self.question = question
        self.chat: ChatRequest | None = None  # once the question is read
        self.requester = requester
        self.target = target
        self._models = models
        self._model = question.model  # the model answering: the fallback once it stands in
        self._answered = False  # some model sent something: the usage row names it
        self._trouble_shown = False  # a live status line says the model is struggling
        self._inflight = inflight
        self._ledger = AnswerLedger(request_id, requester, usage, inflight, starts, observer)
        self._intake = intake
        self._admission: Admission | None = None  # once admitted
        self.display = ReplyDisplay(
            target,
            pacer,
            request_id,
            on_gone=self._on_gone,
            on_blocked=self._on_blocked,
            on_page=self._on_page,
            observer=observer,
        )
        self.text = ""
        self._deltas = 0
        self._limits = limits
        self._options = options
        self._notes: list[str] = []
        self._pages = PageLimit(limits.max_pages)
        self._overrun: str | None = None  # the label when a limit stopped the answer
        self._trim = False  # the text ran past MAX_REPLY_PAGES: cut it to fit
        self._thinking = Thinking(self.display.set_status)
        self._reasoning_deltas = 0
        self._finish: Finish | None = None
        self._stop: StopRequest | None = None
        self._consumer: asyncio.Task[None] | None = None
        self._first_token_at: float | None = None
        self._over = False  # run() returned
        self._has_slot = False
        # Whether the usage and in-flight rows were written (known before the model is asked).
        self._recorded: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    @property
    def message_ids(self) -> list[int]:
        return self.target.message_ids

    def stop(self, request: StopRequest) -> bool:
        """Cancel generation; closing the HTTP response stops the model server billing more tokens.
        Returns False when the answer was already over."""
        if self._stop is not None or self._over or (self._consumer and self._consumer.done()):
            return False
        self._stop = request
        if request.reply_gone:
            self.display.abandon()
        if self._consumer is not None:  # not started yet: run() sees the stop and never asks the model
            self._consumer.cancel()
        return True

    async def run(self) -> None:
        try:
            await self._run()
        finally:
            self._over = True

    async def _run(self) -> None:
        # The placeholder timer starts first: it is what the user waits for. One that must download files or
        # read the conversation first shows it at once; a queued answer shows its place in the queue as soon
        # as it is recorded and joins it.
        delay = 0.0 if self.question.reads else self.target.placeholder_delay()
        placeholder = asyncio.get_running_loop().call_later(delay, self._placeholder_due)
        try:
            recorded = await self._ledger.open(self.question.model)  # known before the question is read
            self._recorded.set_result(recorded)
            error = await self._generate() if recorded else None
        finally:
            placeholder.cancel()
            if not self._recorded.done():
                self._recorded.set_result(False)
        if not recorded:
            self.display.finish("", NOT_RECORDED)  # no row to account in: the model was never asked
            await self.display.wait_synced(FINAL_EDIT_TIMEOUT)
            return
        status, footer = self._outcome(error)
        footer = self._footer(footer)
        if self._trim:
            self.text = self._pages.fit(self.text, footer)
        self.display.finish(self.text, footer, self._reasoning_file())
        # Usage first: a shutdown may not wait for a slow channel's final edit.
        usage = self._finish.usage if self._finish else None
        tokens = tokens_spent(usage, error, self.chat, self._deltas, self._reasoning_deltas)
        # The model that answered: not a fallback that failed too.
        model = self._model if self._answered else self.question.model
        await self._ledger.close(
            status, tokens, model=model, first_token_at=self._first_token_at, error=self._error_detail(error)
        )
        if await self.display.wait_synced(FINAL_EDIT_TIMEOUT):
            await self._ledger.release()  # only now is the reply final
        else:
            log.warning("Request %s: reply left for recovery at the next start", self.request_id)

    async def _generate(self) -> Exception | None:
        """Read the answer (unless stopped before it began); the error it met."""
        try:
            if self._stop is None:
                self._consumer = asyncio.create_task(self._consume(), name=f"llm-{self.request_id}")
                await self._consumer
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():  # this task is being cancelled, not just the model
                if self._consumer is not None:
                    self._consumer.cancel()
                raise
        except Exception as exc:
            log.warning("Request %s (model %s) failed: %r", self.request_id, self.question.model, exc)
            return exc
        return None

    @property
    def generating(self) -> bool:
        """Admitted (bot/streaming/intake.py) and reading the model."""
        return self._has_slot and self._consumer is not None and not self._consumer.done()

    @property
    def queued(self) -> bool:
        """Waiting in the admission queue before asking the model."""
        return not self._has_slot and self._consumer is not None and not self._consumer.done()

    @property
    def cut_off(self) -> bool:
        """Whether the answer ended at the output limit, and so may be continued."""
        return self._stop is None and self._finish is not None and self._finish.reason == "length"

    async def _consume(self) -> None:
        # Files and the conversation are read before the answer takes its place among those generating.
        asked = await self.question.ask()
        self.chat = asked.chat
        self._notes += asked.notes
        async with self._intake.admitted(self._show_queue_position) as admission:
            self._admission = admission
            self._has_slot = True
            deadline = asyncio.timeout(self._limits.deadline)
            try:
                async with deadline:
                    await self._read_within_context()
            except TimeoutError:
                if not deadline.expired():
                    raise
                self._overrun = too_slow(self._limits.deadline)
            finally:
                self._thinking.end()

    async def _read_within_context(self) -> None:
        try:
            await self._read_with_image_fallback()
        except openai.BadRequestError as exc:
            # The conversation is longer than the model's context after all: once more with half the history.
            assert self.chat is not None
            shorter = halved_history(self.chat) if context_full(exc) else None
            if shorter is None or self._deltas or self._reasoning_deltas:
                raise
            self.chat, kept = shorter
            log.info("Request %s: context full, asking again with %d earlier messages", self.request_id, kept)
            self._notes.append(retried_shorter(kept))
            await self._read_with_image_fallback()

    async def _read_with_image_fallback(self) -> None:
        try:
            await self._read()
        except openai.BadRequestError as exc:
            # A model without vision refuses image parts outright, before any text: once more without them.
            assert self.chat is not None
            if not refuses_images(exc) or not has_images(self.chat) or self._deltas or self._reasoning_deltas:
                raise
            log.info("Request %s: the model refused images, asking again without them", self.request_id)
            self.chat = without_images(self.chat)
            self._notes.append(IMAGES_REFUSED)
            await self._read()

    async def _read(self) -> None:
        assert self.chat is not None
        # Between reads the model's chunks gather until the next edit can show them.
        reading = self._models.answer(self.chat, self.display.until_flush)
        async with contextlib.aclosing(reading) as events:
            async for event in events:
                if self._admission is not None and not self._admission.streaming:
                    self._admission.started()  # the model answers: from now on it costs what answers cost
                if isinstance(event, Text):  # the answer
                    if self._first_token_at is None:
                        self._first_token_at = time.monotonic()
                        self._answered = True
                        self._thinking.end()
                        if self._trouble_shown:  # the answer replaces the status line
                            self.display.set_status(None)
                    self.text += event.text
                    self._deltas += event.chunks
                    if self._pages.exceeded(self.text):
                        self._overrun, self._trim = too_long(self._limits.max_pages), True
                        return  # closing the stream stops generation
                    self.display.update(self.text)
                elif isinstance(event, Reasoning):
                    self._answered = True
                    self._reasoning_deltas += 1
                    self._thinking.add(event.text)
                elif isinstance(event, Retrying | FallingBack):
                    self._show_trouble(event)
                else:
                    self._answered = True
                    self._finish = event

    def _placeholder_due(self) -> None:
        """Nothing shows before the answer's rows are written (a crash would leave a reply no restart can
        find), unless Discord's deadline for an interaction can't wait for a slow database."""
        if self._recorded.done() or self.target.answer_deadline:
            self.display.show_placeholder()
            return
        self._recorded.add_done_callback(self._placeholder_recorded)

    def _placeholder_recorded(self, recorded: asyncio.Future[bool]) -> None:
        if recorded.result():  # else the answer ends at once, saying why
            self.display.show_placeholder()

    def _show_queue_position(self, ahead: int | None) -> None:
        self.display.set_status(None if ahead is None else in_queue(ahead))

    def _show_trouble(self, event: Retrying | FallingBack) -> None:
        if isinstance(event, FallingBack):
            self._model = event.model
            line = falling_back(event.model, event.failure)
        else:
            line = retrying(event.failure, event.retry, event.retries, event.delay)
        self.display.set_status(line)
        self._trouble_shown = True

    def _outcome(self, error: Exception | None) -> tuple[Status, str]:
        status, footer = self._ending(error)
        if self._model != self.question.model and self._first_token_at is not None:
            footer = "\n".join(line for line in (answered_by(self._model), footer) if line)
        return status, footer

    def _ending(self, error: Exception | None) -> tuple[Status, str]:
        if self._stop is not None:
            return self._stop.status, self._stop.footer
        if isinstance(error, Unanswerable):
            return Status.ERROR, failed(str(error))
        if error is not None:
            mid_answer = self._first_token_at is not None
            return Status.ERROR, failed(describe_error(error, self._model, mid_answer=mid_answer))
        if self._overrun is not None:
            return Status.STOPPED, self._overrun
        reason = self._finish.reason if self._finish else None
        if reason == "length":
            return Status.COMPLETED, OUTPUT_LIMIT
        if reason == "content_filter":
            return Status.STOPPED, CONTENT_FILTER
        return Status.COMPLETED, ""

    def _reasoning_file(self) -> FileUpload | None:
        """The full thinking, attached in the `file` reasoning mode."""
        if self._options.reasoning is not ReasoningMode.FILE or not self._thinking.text:
            return None
        return FileUpload(REASONING_FILE, self._thinking.text.encode())

    def _footer(self, outcome: str) -> str:
        """The status lines under the answer: notes, how long the model thought, how the answer ended."""
        lines = list(self._notes)
        summary = self._thinking.summary() if self._options.reasoning is ReasoningMode.SUMMARY else None
        lines += [line for line in (summary, outcome) if line]
        return "\n".join(lines)

    async def _on_page(self, message_ids: list[int]) -> None:
        if not await self._recorded:
            return
        try:
            await self._inflight.set_messages(self.request_id, message_ids)
            if self.record is not None:  # a continuation's pages follow those of the answer it continues
                pages = [*self.record.earlier_pages, *message_ids]
                await self._answers.set_pages(self.record.request_id, self.record.origin, pages)
        except FAILURES as exc:  # recovery then misses this page; the answer itself goes on
            log.warning("Request %s: pages not recorded: %r", self.request_id, exc)

    def _on_gone(self) -> None:
        self.stop(StopRequest(Status.STOPPED, "", reply_gone=True))

    def _on_blocked(self, reason: str) -> None:
        self.stop(StopRequest(Status.ERROR, "", reply_gone=True, error=f"discord {reason}"))
        self.display.note(UNDELIVERABLE)

    def _error_detail(self, error: Exception | None) -> str | None:
        if self._stop is not None and self._stop.error is not None:
            return self._stop.error
        return None if error is None else type(error).__name__
