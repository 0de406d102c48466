"""Keeps what Discord shows of one reply in step with the latest text, one paced request at a time."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from bot.streaming.observer import NO_OBSERVER, StreamObserver
from bot.streaming.pacer import Pacer
from bot.streaming.render import render
from bot.streaming.target import DeliveryFailed, DeliveryRetry, MessageGone, ReplyTarget, TargetExpired

log = logging.getLogger(__name__)

_PLACEHOLDER = render("", streaming=True)[0]
MAX_RETRIES = 4
RETRY_BACKOFF = 0.5  # seconds, doubled on each try


class ReplyDisplay:
    """Latest text wins: the text is rendered only when the pacer lets a request go, so a slow channel
    drops intermediate versions, never text."""

    def __init__(
        self,
        target: ReplyTarget,
        pacer: Pacer,
        key: str,
        *,
        on_gone: Callable[[], None],
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
        self._on_page = on_page
        self._text = ""
        self._footer = ""
        self._final = False
        self._opened = False  # something (even the placeholder) was asked to show
        self._shown: list[str] = []
        self._synced = asyncio.Event()
        self.gone = False
        self._failed = False  # gave up on a version after passing failures: the reply may not be final
        self._retries = 0
        self._queued: bool | None = None  # priority of the flush waiting in the pacer, None if none waits

    @property
    def _has_text(self) -> bool:
        return bool(self._shown) and self._shown[0] != _PLACEHOLDER

    def update(self, text: str) -> None:
        self._text = text
        if self._unshown_since is None:
            self._unshown_since = time.monotonic()
        self._schedule()

    def show_placeholder(self) -> None:
        """Put the in-progress marker up now: an interaction must be answered within 3 s."""
        self._opened = True
        self._schedule()

    def finish(self, text: str, footer: str) -> None:
        self._text, self._footer, self._final = text, footer, True
        self._opened = True
        self._schedule()

    async def wait_synced(self, timeout: float) -> bool:
        """Whether the final version is shown (or there is nothing left to show it in)."""
        try:
            await asyncio.wait_for(self._synced.wait(), timeout)
        except TimeoutError:
            log.warning("Reply %s: final edit not delivered within %.0f s", self._key, timeout)
            return False
        return not self._failed

    def _schedule(self) -> None:
        if self.gone:
            self._synced.set()
            return
        if not (self._text or self._opened):
            return
        self._synced.clear()
        priority = self._final or (not self._has_text and bool(self._text))
        if self._queued is not None and (self._queued or not priority):
            return  # a flush is already waiting and will render the latest text when it runs
        page = len(self._shown) - 1 if self._shown else 0
        route = self._target.route(page)
        self._queued = priority
        self._pacer.submit(
            self._key,
            self._flush,
            channel_id=route.channel_id,
            route=route.key,
            uses_global=route.uses_global,
            priority=priority,
        )

    async def _flush(self) -> None:
        self._queued = None
        if self.gone:
            return
        pages = render(self._text, streaming=not self._final, footer=self._footer)
        stale = [i for i, content in enumerate(pages) if i >= len(self._shown) or self._shown[i] != content]
        if not stale:
            if self._final:
                self._synced.set()
            return
        page = stale[0]
        first_text = not self._has_text and bool(self._text)
        rendered, rendered_at = self._text, time.monotonic()
        try:
            await self._target.put(page, pages[page])
        except MessageGone as exc:
            log.info("Reply %s can no longer be shown (%s): stopping", self._key, exc)
            self.gone = True
            self._synced.set()
            self._on_gone()
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
            self._observe(first_text)
            # Text that arrived while this request was out waits for the next one (lag counted from here).
            self._unshown_since = None if self._text == rendered else rendered_at
        self._retries = 0
        await self._record(page, pages[page])
        if len(stale) > 1:
            self._schedule()
        elif self._final:
            self._synced.set()

    def _observe(self, first_text: bool) -> None:
        now = time.monotonic()
        if first_text:
            self._observer.first_text(now - self._created_at)
        if self._unshown_since is not None:
            self._observer.display_lag(now - self._unshown_since)

    async def _retry(self, page: int, exc: DeliveryRetry) -> None:
        self._retries += 1
        if self._retries > MAX_RETRIES:
            log.error("Reply %s: giving up on page %d after %d tries: %s", self._key, page, MAX_RETRIES, exc)
            self._failed = True
            self._synced.set()
            return
        log.warning(
            "Reply %s: page %d not delivered (%s), try %d of %d",
            self._key,
            page,
            exc,
            self._retries,
            MAX_RETRIES,
        )
        await asyncio.sleep(RETRY_BACKOFF * 2 ** (self._retries - 1))
        self._schedule()

    async def _record(self, page: int, content: str) -> None:
        if page == len(self._shown):
            self._shown.append(content)
            await self._on_page(list(self._target.message_ids))
        else:
            self._shown[page] = content
