"""Every answer in flight: start them, find them by message, stop them, and stop them all on shutdown."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid

from bot.admission import RESTARTING, Refused
from bot.model_calls import ModelCaller
from bot.reservations import Ticket
from bot.status import INTERRUPTED_BY_RESTART, Status
from bot.store.answers import AnswerOrigin, AnswerRecord, AnswersStore
from bot.store.inflight import InflightStore
from bot.store.starts import AnswerStarts
from bot.store.usage import UsageStore
from bot.streaming.continuation import CutOff, CutOffAnswers
from bot.streaming.intake import Intake
from bot.streaming.observer import NO_OBSERVER, StreamObserver
from bot.streaming.options import AnswerOptions, Limits, Question
from bot.streaming.pacer import Pacer
from bot.streaming.stream import ReplyStream, Requester, StopRequest
from bot.streaming.target import ReplyTarget

log = logging.getLogger(__name__)


class StreamManager:
    def __init__(
        self,
        *,
        models: ModelCaller,
        pacer: Pacer,
        usage: UsageStore,
        inflight: InflightStore,
        starts: AnswerStarts,
        answers: AnswersStore,
        max_concurrent: int | None,
        limits: Limits,
        observer: StreamObserver = NO_OBSERVER,
    ) -> None:
        self._answers = answers
        self._models = models
        self._observer = observer
        self._pacer = pacer
        self._usage = usage
        self._inflight = inflight
        self._starts = starts
        # Past what the process keeps up with, the bot's CPU, not Discord, becomes the limit: the rest wait
        # their turn behind a placeholder instead of slowing every answer and the gateway down.
        self.intake = Intake(max_concurrent)
        self._streams: dict[str, tuple[ReplyStream, asyncio.Task[None], int | None]] = {}
        self._limits = limits
        self.cut_offs = CutOffAnswers()
        self.closed = False  # shutdown began: no answer may start after it

    def __len__(self) -> int:
        return len(self._streams)

    @property
    def generating(self) -> int:
        return sum(stream.generating for stream, _, _ in self._streams.values())

    @property
    def queued(self) -> int:
        return sum(stream.queued for stream, _, _ in self._streams.values())

    def start(
        self,
        *,
        question: Question,
        requester: Requester,
        target: ReplyTarget,
        ticket: Ticket,
        prompt_message_id: int | None = None,
        options: AnswerOptions | None = None,
        origin: AnswerOrigin | None = None,
        continues: AnswerRecord | None = None,
    ) -> ReplyStream:
        """Start an answer; with an origin its pages are recorded, so replies to any of them continue it. A
        continuation's pages are recorded after those of the answer it ``continues``. ``ticket`` (its
        admission's reservation) is released when it is over. Refused once shutdown began: the answer
        would run while the connections close under it."""
        if self.closed:
            ticket.release()
            raise Refused(RESTARTING)
        request_id = uuid.uuid4().hex
        record = continues or (None if origin is None else AnswerRecord(request_id, origin))
        stream = ReplyStream(
            request_id=request_id,
            question=question,
            requester=requester,
            target=target,
            models=self._models,
            pacer=self._pacer,
            usage=self._usage,
            inflight=self._inflight,
            starts=self._starts,
            intake=self.intake,
            limits=self._limits,
            options=options or AnswerOptions(),
            observer=self._observer,
            answers=self._answers,
            record=record,
        )
        task = asyncio.create_task(stream.run(), name=f"reply-{request_id}")
        self._streams[request_id] = (stream, task, prompt_message_id)
        task.add_done_callback(lambda t: self._forget(stream, t, ticket))
        log.info(
            "Request %s started in channel %s for user %s (model %s)",
            request_id,
            requester.channel_id,
            requester.user_id,
            question.model,
        )
        return stream

    def _forget(self, stream: ReplyStream, task: asyncio.Task[None], ticket: Ticket) -> None:
        self._streams.pop(stream.request_id, None)
        ticket.release()
        if not task.cancelled() and task.exception() is not None:
            log.error("Request %s crashed", stream.request_id, exc_info=task.exception())
        elif stream.cut_off and stream.chat is not None and stream.message_ids:
            r = stream.requester
            ids = tuple(stream.message_ids)
            record = stream.record
            if record is not None:  # its continuation's pages follow these
                record = dataclasses.replace(record, earlier_pages=(*record.earlier_pages, *ids))
            cut_off = CutOff(stream.chat, stream.text, r.user_id, r.guild_id, r.channel_id, ids, record)
            self.cut_offs.remember(cut_off)

    def by_message(self, message_id: int) -> ReplyStream | None:
        """The answer showing in this message, or answering this prompt message."""
        for stream, _, prompt_id in self._streams.values():
            if message_id == prompt_id or message_id in stream.message_ids:
                return stream
        return None

    def latest_for(self, channel_id: int, user_id: int) -> ReplyStream | None:
        mine = [
            s
            for s, _, _ in self._streams.values()
            if s.requester.channel_id == channel_id and s.requester.user_id == user_id
        ]
        return mine[-1] if mine else None

    def stop(self, stream: ReplyStream, status: Status, footer: str, *, reply_gone: bool = False) -> bool:
        stopped = stream.stop(StopRequest(status, footer, reply_gone))
        if stopped:
            log.info("Request %s stopping: %s", stream.request_id, status.value)
        return stopped

    async def shutdown(self, timeout: float) -> None:
        """Finalise every answer as interrupted and record its usage before the connections close."""
        self.closed = True
        entries = list(self._streams.values())
        for stream, _, _ in entries:
            self.stop(stream, Status.INTERRUPTED, INTERRUPTED_BY_RESTART)
        tasks = [task for _, task, _ in entries]
        if not tasks:
            self.intake.close()
            return
        _, pending = await asyncio.wait(tasks, timeout=timeout)
        self.intake.close()
        for task in pending:
            task.cancel()
        if pending:
            log.warning("%d answers did not finish within %.0f s of shutdown", len(pending), timeout)
