"""Answers' first rows, written together: every answer starting in the same moment waits for one commit
of its usage and in-flight rows, not for a commit of its own behind all the others (200 questions at once
were waiting up to 0.7 s for their turn before the model was asked)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from bot.db import Database
from bot.db.retry import FAILURES
from bot.store.inflight import InflightStore
from bot.store.usage import AnswerStart, UsageStore

log = logging.getLogger(__name__)

RECORD_TIMEOUT = 10.0  # the busy timeout bounds each statement; this bounds the wait for the connection too

_Entry = tuple[AnswerStart, asyncio.Future[bool]]


class AnswerStarts:
    def __init__(self, db: Database, usage: UsageStore, inflight: InflightStore) -> None:
        self._db = db
        self._usage = usage
        self._inflight = inflight
        self._pending: list[_Entry] = []
        self._writer: asyncio.Task[None] | None = None

    async def record(self, answer: AnswerStart) -> bool:
        """Whether the answer's rows were written (both, or neither); the answers waiting meanwhile are
        written with it, in one transaction."""
        entry: _Entry = (answer, asyncio.get_running_loop().create_future())
        self._pending.append(entry)
        if self._writer is None:
            self._writer = asyncio.create_task(self._write(), name="answer-starts")
        try:
            # Shielded: the others in its transaction still need it written.
            return await asyncio.shield(entry[1])
        except asyncio.CancelledError:
            with contextlib.suppress(ValueError):
                self._pending.remove(entry)  # not written yet: now it never will be
            raise

    async def _write(self) -> None:
        batch: list[_Entry] = []
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                answers = [answer for answer, _ in batch]
                try:
                    async with asyncio.timeout(RECORD_TIMEOUT), self._db.transaction():
                        await self._usage.start(answers)
                        await self._inflight.add(answers)
                except FAILURES as exc:
                    log.error(
                        "%d answer(s) not started: their usage could not be recorded: %r", len(batch), exc
                    )
                    written = False
                except Exception:  # refused for good (a bug): still, nobody may wait forever
                    log.exception("%d answer(s) not started: the database refused their rows", len(batch))
                    written = False
                else:
                    written = True
                for _, done in batch:
                    done.set_result(written)
                batch = []
        finally:
            for _, done in [*batch, *self._pending]:  # cancelled at shutdown: nobody was written
                if not done.done():
                    done.set_result(False)
            self._pending = []
            self._writer = None
