"""The bot's own 🛑 on a reply still being written: added once the reply exists, removed when it ends."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from bot.streaming.pacer import Pacer
from bot.streaming.target import ReplyTarget

log = logging.getLogger(__name__)


class StopButton:
    def __init__(self, target: ReplyTarget, pacer: Pacer, key: str) -> None:
        self._target = target
        self._pacer = pacer
        self._key = key
        self._wanted = False
        self._touched = False  # an add has started, so a removal is needed
        self._removal: asyncio.Future[None] | None = None

    def show(self) -> None:
        self._wanted = True
        self._submit(self._add, shown=True)

    def hide(self) -> None:
        """Take the button off (wait_hidden() waits for it)."""
        self._wanted = False
        if self._touched:
            self._removal = self._submit(self._remove, shown=False)
        else:
            self._drop_pending()  # the add never went out: nothing to undo

    def abandon(self) -> None:
        """The reply is gone, and the button with it: send nothing more."""
        self._wanted = False
        self._drop_pending()

    async def wait_hidden(self, timeout: float) -> None:
        if self._removal is not None:
            await asyncio.wait([self._removal], timeout=timeout)

    def _drop_pending(self) -> None:
        self._pacer.cancel(self._key)

    def _submit(self, action: Callable[[], Awaitable[None]], *, shown: bool) -> asyncio.Future[None]:
        return self._pacer.submit(self._key, action, self._target.reaction_route(shown))

    async def _add(self) -> None:
        if not self._wanted:
            return
        self._touched = True
        await self._set(True)

    async def _remove(self) -> None:
        await self._set(False)

    async def _set(self, shown: bool) -> None:
        try:
            await self._target.set_stop_button(shown)
        except Exception as exc:  # missing permission or a deleted reply: the answer matters more
            log.info(
                "Reply %s: could not %s the stop reaction: %r", self._key, "add" if shown else "remove", exc
            )
