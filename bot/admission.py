"""Whether a request may go to the model: channel on, access, cooldown, answers in progress, daily token
quota (counting what the member's running answers may still spend), budget."""

from __future__ import annotations

import logging
import math
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bot.access import NOT_ALLOWED, daily_quota, may_ask
from bot.budget import Budget
from bot.db import DATABASE_DOWN, DatabaseUnavailable
from bot.reservations import Reservations, Ticket
from bot.settings import COOLDOWN_MAX, ChannelSettings
from bot.store.settings import SettingsStore
from bot.store.usage import UsageStore

log = logging.getLogger(__name__)

RESTARTING = "I'm restarting. Ask again in a moment."
# What a running answer with no output limit is assumed to spend, until it ends and its usage is counted.
UNLIMITED_RESERVATION = 4096


class Refused(Exception):
    """str(refusal) is the short message shown to the user."""


class Quiet(Refused):
    """A refusal a mention gets no answer to (a slash command still gets it, ephemeral)."""


class Disabled(Quiet):
    """The bot is switched off in this channel."""


class NotAllowed(Quiet):
    """The member is blocked here, or not on the allow list."""


@dataclass(frozen=True)
class Admitted:
    settings: ChannelSettings
    ticket: Ticket  # the answer's reservation: hand it to StreamManager.start, which releases it


class Admission:
    def __init__(
        self, settings: SettingsStore, usage: UsageStore, budget: Budget, defaults: ChannelSettings
    ) -> None:
        self._settings = settings
        self._usage = usage
        self._budget = budget
        self._defaults = defaults
        self.reservations = Reservations()
        # Admissions the usage table may not show yet: its row is written once the answer starts.
        self._admitted: dict[tuple[int | None, int], datetime] = {}
        self.closing = False  # set at shutdown: new answers would be cut off at once

    async def check(
        self, guild_id: int | None, channel_id: int, user_id: int, role_ids: Collection[int] = ()
    ) -> Admitted:
        """The settings to answer with and the answer's reservation, or Refused (also while the database
        is unavailable). ``role_ids``: the member's roles in the server."""
        try:
            return await self._check(guild_id, channel_id, user_id, role_ids)
        except DatabaseUnavailable as exc:
            log.warning("Refused a request in channel %s: %s", channel_id, exc)
            raise Refused(DATABASE_DOWN) from exc

    async def _check(
        self, guild_id: int | None, channel_id: int, user_id: int, role_ids: Collection[int]
    ) -> Admitted:
        if self.closing:
            raise Refused(RESTARTING)
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
        member = (guild_id, user_id)
        try:
            await self._check_spending(guild_id, user_id, role_ids, settings)
            # No await from the quota check to take(): parallel requests see each other's reservations.
            running = self.reservations.running(member)
            if running >= settings.max_streams_per_user:
                raise Refused(
                    f"You have {running} answer{'s' if running > 1 else ''} still being written. "
                    "Wait for one to finish, or stop it with 🛑."
                )
        except Refused:
            self._admitted.pop(member, None)
            raise
        return Admitted(
            settings, self.reservations.take(member, settings.max_tokens or UNLIMITED_RESERVATION)
        )

    async def _check_spending(
        self, guild_id: int | None, user_id: int, role_ids: Collection[int], settings: ChannelSettings
    ) -> None:
        if guild_id is not None and settings.monthly_budget is not None:  # a server's budget
            refusal = self._budget.refusal(await self._budget.spent(guild_id, settings), settings)
            if refusal:
                raise Refused(refusal)
        quota = daily_quota(settings, role_ids)
        if quota is None:
            return
        used = await self._usage.tokens_today(guild_id, user_id)
        if used >= quota:
            where = "in direct messages" if guild_id is None else "on this server"
            raise Refused(
                f"You've used your {quota:,} tokens for today {where}. The quota resets at 00:00 UTC."
            )
        # Last, after every await: what the member's running answers may still spend counts too.
        if used + self.reservations.reserved_tokens((guild_id, user_id)) >= quota:
            raise Refused(
                "Your answers in progress may use the rest of today's token quota. "
                "Ask again when they finish."
            )

    def _remember(self, guild_id: int | None, user_id: int, now: datetime) -> None:
        self._admitted[guild_id, user_id] = now
        if len(self._admitted) > 10_000:  # older entries are past any cooldown and in the usage table
            horizon = now - timedelta(seconds=COOLDOWN_MAX)
            self._admitted = {k: t for k, t in self._admitted.items() if t > horizon}
