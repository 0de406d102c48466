"""Keeps what Discord shows of one reply in step with what it should show, one paced request at a time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from enum import Enum, IntEnum

from bot.streaming.observer import NO_OBSERVER, StreamObserver
from bot.streaming.pacer import Pacer
from bot.streaming.render import Layout
from bot.streaming.stop_button import StopButton
from bot.streaming.target import (
    DeliveryBlocked,
    DeliveryFailed,
    DeliveryRetry,
    FileUpload,
    MessageGone,
    ReplyTarget,
    TargetExpired,
)

log = logging.getLogger(__name__)

MAX_RETRIES = 4  # for a streaming version: the next one will be tried anyway
# The final version has no successor: it keeps trying for about as long as the stream waits for it (30 s).
FINAL_MAX_RETRIES = 9
RETRY_BACKOFF = 0.5  # seconds, doubled on each try
MAX_BACKOFF = 4.0
STOP_BUTTON_TIMEOUT = 5.0
# How long a flush waits for a paused reader to take in what arrived meanwhile (one pass of the loop's
# I/O, unless the model sent nothing since).
CATCH_UP_MAX = 0.05


@dataclass(frozen=True)
class Frame:
    """What the reply should show."""

    text: str = ""
    # The line under the text: while streaming a live, transient status (in place of the bare cursor when
    # there is no text yet); once final, the footer.
    status_line: str | None = None
    final: bool = False
    file: FileUpload | None = None  # attached to the last page with the final version


class Delivery(Enum):
    IN_PROGRESS = "in progress"  # Discord is behind the frame
    SYNCED = "synced"  # Discord shows the frame
    GONE = "gone"  # the reply was deleted: nothing more will be shown
    FAILED = "failed"  # gave up on a version after passing failures: the reply may not be final


class Queued(IntEnum):
    """The flush waiting in the pacer; a higher one serves a lower need."""

    NONE = 0
    NORMAL = 1
    PRIORITY = 2  # first text and the final version jump the queue


def _burst(stale: list[int], shown: int) -> list[int]:
    """The stale pages that go out at once: the first, and at a page break the new page right behind it.

    The finishing edit of page N and the creation of page N+1 spend different channel budgets, so they go
    together: sending the create only after the edit returned could cost a second, since discord.py sleeps
    out an exhausted bucket (the 5th edit of a window) before it returns."""
    first = stale[0]
    if first < shown and len(stale) > 1 and stale[1] == shown:
        return stale[:2]
    return stale[:1]


class ReplyDisplay:
    """Latest frame wins: it is rendered only when the pacer lets a request go, so a slow channel drops
    intermediate versions, never text. Owns the stop button, shown while the answer is being written."""

    def __init__(
        self,
        target: ReplyTarget,
        pacer: Pacer,
        key: str,
        *,
        on_gone: Callable[[], None],
        on_blocked: Callable[[str], None],
        on_page: Callable[[list[int]], Awaitable[None]],
        observer: StreamObserver = NO_OBSERVER,
    ) -> None:
        self._target = target
        self._observer = observer
        self._created_at = time.monotonic()
        self._unshown_since: float | None = None  # when the oldest text not yet shown arrived
        self._pacer = pacer
        self._key = key
        self._on_gone = on_gone
        self._on_blocked = on_blocked
        self._note: asyncio.Future[None] | None = None
        self._on_page = on_page
        self._button = StopButton(target, pacer, f"{key}:stop-button")
        self._wanted: Frame | None = None  # None until something (even the placeholder) should show
        self._layout = Layout()
        self._shown: list[str] = []  # each page as Discord shows it
        self._text_shown = False  # some of the answer's text has reached Discord
        self._text_sent = False  # ... or is on its way: later text no longer jumps the queue
        self._queued = Queued.NONE
        self._queued_break: int | None = None  # the page the queued flush starts, at a page break
        self._delivery = Delivery.IN_PROGRESS
        self._settled = asyncio.Event()  # set while delivery is not in progress
        self._retries = 0
        self._reader: asyncio.Future[None] | None = None  # a reader waiting for the next flush
        self._catching_up: asyncio.Future[None] | None = None  # a flush waiting for that reader
        self._read_paused_at: float | None = None  # text read after a pause may have arrived since then
        self._reader_behind = False  # the reader paused: more text may be waiting for it

    def update(self, text: str) -> None:
        if self._unshown_since is None:
            self._unshown_since = self._read_paused_at or time.monotonic()
        self._read_paused_at = None
        self._caught_up()
        # Called on every token: a plain constructor costs a fraction of dataclasses.replace().
        self._want(Frame(text, self._frame.status_line))

    def until_flush(self) -> Awaitable[None] | None:
        """What a reader of the model may wait for before reading on: the start of the flush that will send
        the text it gave (text read before then would only join it in the same edit); None when no flush
        is queued. The flush then waits a moment for the reader to catch up."""
        if self._queued is Queued.NONE or self._catching_up is not None or self._delivery is Delivery.GONE:
            return None  # nothing queued, or the flush under way takes what is read now
        return self._wait_for_flush()

    async def _wait_for_flush(self) -> None:
        self._reader = reader = asyncio.get_running_loop().create_future()
        self._reader_behind = True  # until it hands over its next text, even if it stops waiting first
        paused_at = time.monotonic()
        try:
            await reader
        finally:
            self._reader = None
            self._read_paused_at = paused_at

    async def _catch_up(self) -> None:
        """Wake a waiting reader and give it a moment to hand over what arrived while it waited."""
        reader = self._reader
        if reader is not None and not reader.done():
            reader.set_result(None)
        if not self._reader_behind:
            return
        self._catching_up = caught_up = asyncio.get_running_loop().create_future()
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CATCH_UP_MAX):
                    await caught_up
        finally:
            self._catching_up = None

    def _caught_up(self) -> None:
        """The reader handed over all it read: a flush waiting for it goes on."""
        self._reader_behind = False
        if self._catching_up is not None and not self._catching_up.done():
            self._catching_up.set_result(None)

    def set_status(self, line: str | None) -> None:
        """A live status line under the text (or alone, while there is none); None clears it. It never
        shows in the final version."""
        self._want(replace(self._frame, status_line=line))

    def show_placeholder(self) -> None:
        """Put the in-progress marker up now: an interaction must be answered within 3 s."""
        self._want(self._frame)

    def finish(self, text: str, footer: str, file: FileUpload | None = None) -> None:
        self._caught_up()
        self._want(Frame(text, footer or None, final=True, file=file))
        if self._delivery is not Delivery.GONE:
            self._button.hide()

    def abandon(self) -> None:
        """The reply is gone: drop pending work and release whoever waits for it."""
        if self._delivery is Delivery.GONE:
            return
        self._set_delivery(Delivery.GONE)
        for waiting in (self._reader, self._catching_up):
            if waiting is not None and not waiting.done():
                waiting.set_result(None)
        self._pacer.cancel(self._key)
        self._button.abandon()

    async def wait_synced(self, timeout: float) -> bool:
        """After finish(): whether the final version is shown (or there is nothing left to show it in).
        Also gives the stop button's removal a moment to go out."""
        try:
            await asyncio.wait_for(self._settled.wait(), timeout)
        except TimeoutError:
            log.warning("Reply %s: final edit not delivered within %.0f s", self._key, timeout)
            synced = False
        else:
            synced = self._delivery in (Delivery.SYNCED, Delivery.GONE)
        await self._button.wait_hidden(STOP_BUTTON_TIMEOUT)
        if self._note is not None:
            await asyncio.wait([self._note], timeout=STOP_BUTTON_TIMEOUT)
        return synced

    def note(self, text: str) -> None:
        """A short message beside a reply Discord no longer lets us edit, where the bot may still write."""
        self._note = self._pacer.submit(
            f"{self._key}:note", lambda: self._send_note(text), self._target.note_route()
        )

    async def _send_note(self, text: str) -> None:
        try:
            await self._target.note(text)
        except Exception as exc:  # nowhere left to write: the log has it
            log.warning("Reply %s: could not post a note beside it: %r", self._key, exc)

    @property
    def _frame(self) -> Frame:
        return self._wanted or Frame()

    def _want(self, frame: Frame) -> None:
        if self._wanted is not None and self._wanted.final:
            return  # the final version is settled
        self._wanted = frame
        self._schedule()

    def _schedule(self, *, page_break: int | None = None) -> None:
        """Queue a flush; ``page_break``: the page that goes right behind the one just sent."""
        if self._wanted is None or self._delivery is Delivery.GONE:
            return
        self._set_delivery(Delivery.IN_PROGRESS)
        first_text = bool(self._wanted.text) and not self._text_sent
        # Nothing shown yet: an interaction unanswered for 3 s fails, and a question deserves a sign of life.
        urgent = self._wanted.final or first_text or not self._shown or page_break is not None
        needed = Queued.PRIORITY if urgent else Queued.NORMAL
        if self._queued >= needed:
            return  # the waiting flush renders the latest frame when it runs
        self._queued = needed
        self._queued_break = page_break
        self._submit()

    def _submit(self) -> None:
        """Hand the pacer the queued flush, with the route of the request it will most likely send, so the
        pacer spends the right budget (a new page is a create, the rest edits): the next page at a break,
        else the last one shown."""
        page = self._queued_break if self._queued_break is not None else max(len(self._shown) - 1, 0)
        route = self._target.route(page)
        self._pacer.submit(self._key, self._flush, route, priority=self._queued is Queued.PRIORITY)

    async def _flush(self) -> None:
        await self._catch_up()  # still queued meanwhile: what the reader hands over is for this flush
        self._queued = Queued.NONE
        frame = self._wanted
        if frame is None or self._delivery is Delivery.GONE:
            return
        laid_out = self._layout.pages(frame.text, streaming=not frame.final, footer=frame.status_line or "")
        pages = [page.content for page in laid_out]
        stale = [i for i, content in enumerate(pages) if i >= len(self._shown) or self._shown[i] != content]
        if not stale:
            self._set_delivery(Delivery.SYNCED)
            return
        burst = _burst(stale, len(self._shown))
        self._text_sent = self._text_sent or bool(frame.text)
        page = burst[0]
        sent_at = time.monotonic()
        try:
            await self._put(frame, pages, burst)
        except MessageGone as exc:
            log.info("Reply %s can no longer be shown (%s): stopping", self._key, exc)
            self.abandon()
            self._on_gone()
            return
        except DeliveryBlocked as exc:
            log.warning("Reply %s: Discord refuses it for good (%s): stopping", self._key, exc)
            self.abandon()
            self._on_blocked(str(exc))
            return
        except TargetExpired:
            log.info("Reply %s: interaction token expired, continuing in channel messages", self._key)
            self._target.fall_back()
            self._schedule()
            return
        except DeliveryRetry as exc:
            await self._retry(page, exc)
            return
        except DeliveryFailed as exc:
            # Retrying the same request would fail the same way; skip this version.
            log.error("Reply %s: Discord refused page %d: %s", self._key, page, exc)
        else:
            self._observe(frame, sent_at)
            if self._queued is not Queued.NONE and len(self._target.message_ids) > len(self._shown):
                # Queued while this request created the reply: it will edit what now exists (a webhook
                # edit spends the channel's budget, unlike the interaction response it was queued behind).
                self._submit()
        self._retries = 0
        self._text_shown = self._text_shown or bool(frame.text)
        for sent in burst:
            await self._record(sent, pages[sent])
        rest = stale[len(burst) :]
        if rest:
            # More pages than one burst: the rest goes right behind it, skipping the spacing between edits
            # but never a budget.
            self._schedule(page_break=rest[0])
        elif self._wanted == frame:  # else a change made meanwhile has queued its own flush
            self._set_delivery(Delivery.SYNCED)

    async def _put(self, frame: Frame, pages: list[str], burst: list[int]) -> None:
        """Send the pages of a burst together; the first failure raises (after all were tried).

        The new page starts first: discord.py sends one interaction's webhook requests one at a time, and
        after the request that exhausts a bucket it holds the rest until that bucket resets. An edit may
        well exhaust its bucket, a create seldom: so the new page shows at once, and the edit trimming the
        page before it follows."""
        last = len(pages) - 1
        file = frame.file if frame.final else None
        puts = [self._target.put(p, pages[p], file if p == last else None) for p in reversed(burst)]
        for outcome in await asyncio.gather(*puts, return_exceptions=True):
            if isinstance(outcome, BaseException):
                raise outcome

    def _observe(self, frame: Frame, sent_at: float) -> None:
        now = time.monotonic()
        if frame.text and not self._text_shown:
            self._observer.first_text(now - self._created_at)
        if frame.text and self._unshown_since is not None:
            self._observer.display_lag(now - self._unshown_since)
            # Text that arrived while this request was out waits for the next one (its lag counted from here).
            self._unshown_since = None if self._frame.text == frame.text else sent_at

    async def _retry(self, page: int, exc: DeliveryRetry) -> None:
        self._retries += 1
        retries = FINAL_MAX_RETRIES if self._wanted is not None and self._wanted.final else MAX_RETRIES
        if self._retries > retries:
            log.error("Reply %s: giving up on page %d after %d tries: %s", self._key, page, retries, exc)
            self._set_delivery(Delivery.FAILED)
            return
        log.warning(
            "Reply %s: page %d not delivered (%s), try %d of %d",
            self._key,
            page,
            exc,
            self._retries,
            retries,
        )
        await asyncio.sleep(min(RETRY_BACKOFF * 2 ** (self._retries - 1), MAX_BACKOFF))
        self._schedule()

    async def _record(self, page: int, content: str) -> None:
        if page < len(self._shown):
            self._shown[page] = content
            return
        self._shown.append(content)
        # Recorded first: a reply showing its stop button is one a restart can find (kill -9 right after).
        await self._on_page(list(self._target.message_ids))
        streaming = self._wanted is not None and not self._wanted.final
        if page == 0 and streaming and self._delivery is not Delivery.GONE:
            self._button.show()

    def _set_delivery(self, delivery: Delivery) -> None:
        if self._delivery is Delivery.GONE:
            return  # final: a flush that was under way when the reply went cannot revive it
        self._delivery = delivery
        if delivery is Delivery.IN_PROGRESS:
            self._settled.clear()
        else:
            self._settled.set()
