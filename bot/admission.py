"""Whether a request may go to the model: channel on, access, cooldown, daily token quota, budget."""

from __future__ import annotations

import logging
import math
from collections.abc import Collection
from datetime import UTC, datetime, timedelta

from bot.access import NOT_ALLOWED, daily_quota, may_ask
from bot.budget import Budget
from bot.db import DATABASE_DOWN, DatabaseUnavailable
from bot.settings import COOLDOWN_MAX, ChannelSettings
from bot.store.settings import SettingsStore
from bot.store.usage import UsageStore

log = logging.getLogger(__name__)


class Refused(Exception):
    """str(refusal) is the short message shown to the user."""


class Quiet(Refused):
    """A refusal a mention gets no answer to (a slash command still gets it, ephemeral)."""


class Disabled(Quiet):
    """The bot is switched off in this channel."""


class NotAllowed(Quiet):
    """The member is blocked here, or not on the allow list."""


class Admission:
    def __init__(
        self, settings: SettingsStore, usage: UsageStore, budget: Budget, defaults: ChannelSettings
    ) -> None:
        self._settings = settings
        self._usage = usage
        self._budget = budget
        self._defaults = defaults
        # Admissions the usage table may not show yet: its row is written once the answer starts.
        self._admitted: dict[tuple[int | None, int], datetime] = {}
        self.closing = False  # set at shutdown: new answers would be cut off at once

    async def check(
        self, guild_id: int | None, channel_id: int, user_id: int, role_ids: Collection[int] = ()
    ) -> ChannelSettings:
        """The settings to answer with, or Refused (also while the database is unavailable).
        ``role_ids``: the member's roles in the server."""
        try:
            return await self._check(guild_id, channel_id, user_id, role_ids)
        except DatabaseUnavailable as exc:
            log.warning("Refused a request in channel %s: %s", channel_id, exc)
            raise Refused(DATABASE_DOWN) from exc

    async def _check(
        self, guild_id: int | None, channel_id: int, user_id: int, role_ids: Collection[int]
    ) -> ChannelSettings:
        if self.closing:
            raise Refused("I'm restarting. Ask again in a moment.")
        settings = await self._settings.get(guild_id, channel_id, self._defaults)
        if not settings.enabled:
            raise Disabled(
                "I'm switched off in this channel. A server admin can turn me on with `/config set`."
            )
        # Direct messages (guild_id None) count per user across all of them, like one more server.
        if not may_ask(settings, user_id, role_ids):
            raise NotAllowed(NOT_ALLOWED)
        now = datetime.now(UTC)
        if settings.cooldown_seconds:
            recorded = await self._usage.last_request_at(guild_id, user_id)
            # Read after the await, with no await before _remember: a racing question sees this one.
            last = max((t for t in (recorded, self._admitted.get((guild_id, user_id))) if t), default=None)
            if last is not None:
                wait = settings.cooldown_seconds - (now - last).total_seconds()
                if wait > 0:
                    raise Refused(f"Slow down a little: you can ask again in {math.ceil(wait)} s.")
        self._remember(guild_id, user_id, now)
        try:
            await self._check_spending(guild_id, user_id, role_ids, settings)
        except Refused:
            self._admitted.pop((guild_id, user_id), None)
            raise
        return settings

    async def _check_spending(
        self, guild_id: int | None, user_id: int, role_ids: Collection[int], settings: ChannelSettings
    ) -> None:
        quota = daily_quota(settings, role_ids)
        if quota is not None and await self._usage.tokens_today(guild_id, user_id) >= quota:
            where = "in direct messages" if guild_id is None else "on this server"
            raise Refused(
                f"You've used your {quota:,} tokens for today {where}. The quota resets at 00:00 UTC."
            )
        if guild_id is not None and settings.monthly_budget is not None:  # a server's budget
            refusal = self._budget.refusal(await self._budget.spent(guild_id, settings), settings)
            if refusal:
                raise Refused(refusal)

    def _remember(self, guild_id: int | None, user_id: int, now: datetime) -> None:
        self._admitted[guild_id, user_id] = now
        if len(self._admitted) > 10_000:  # older entries are past any cooldown and in the usage table
            horizon = now - timedelta(seconds=COOLDOWN_MAX)
            self._admitted = {k: t for k, t in self._admitted.items() if t > horizon}
