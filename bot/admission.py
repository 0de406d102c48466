"""Whether a request may go to the model: channel enabled, user cooldown, answers in progress, daily token
quota (counting what the member's running answers may still spend)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bot.reservations import Reservations, Ticket
from bot.settings import COOLDOWN_MAX, ChannelSettings
from bot.store.settings import SettingsStore
from bot.store.usage import UsageStore

RESTARTING = "I'm restarting. Ask again in a moment."
# What a running answer with no output limit is assumed to spend, until it ends and its usage is counted.
UNLIMITED_RESERVATION = 4096


class Refused(Exception):
    """str(refusal) is the short message shown to the user."""


class Disabled(Refused):
    """The bot is switched off in this channel."""


@dataclass(frozen=True)
class Admitted:
    settings: ChannelSettings
    ticket: Ticket  # the answer's reservation: hand it to StreamManager.start, which releases it


class Admission:
    def __init__(self, settings: SettingsStore, usage: UsageStore, defaults: ChannelSettings) -> None:
        self._settings = settings
        self._usage = usage
        self._defaults = defaults
        self.reservations = Reservations()
        # Admissions the usage table may not show yet: its row is written once the answer starts.
        self._admitted: dict[tuple[int | None, int], datetime] = {}
        self.closing = False  # set at shutdown: new answers would be cut off at once

    async def check(self, guild_id: int | None, channel_id: int, user_id: int) -> Admitted:
        """The settings to answer with and the answer's reservation, or Refused."""
        if self.closing:
            raise Refused(RESTARTING)
        settings = await self._settings.get(guild_id, channel_id, self._defaults)
        if not settings.enabled:
            raise Disabled(
                "I'm switched off in this channel. A server admin can turn me on with `/config set`."
            )
        if guild_id is not None:
            await self._check_limits(guild_id, user_id, settings)
        # No await from the quota check to take(): parallel requests see each other's reservations.
        member = (guild_id, user_id)
        running = self.reservations.running(member)
        if running >= settings.max_streams_per_user:
            self._admitted.pop(member, None)
            raise Refused(
                f"You have {running} answer{'s' if running > 1 else ''} still being written. "
                "Wait for one to finish, or stop it with 🛑."
            )
        reserve = settings.max_tokens or UNLIMITED_RESERVATION
        return Admitted(settings, self.reservations.take(member, reserve))

    async def _check_limits(self, guild_id: int, user_id: int, settings: ChannelSettings) -> None:
        now = datetime.now(UTC)
        if settings.cooldown_seconds:
            recorded = await self._usage.last_request_at(guild_id, user_id)
            last = max((t for t in (recorded, self._admitted.get((guild_id, user_id))) if t), default=None)
            if last is not None:
                wait = settings.cooldown_seconds - (now - last).total_seconds()
                if wait > 0:
                    raise Refused(f"Slow down a little: you can ask again in {math.ceil(wait)} s.")
        self._remember(guild_id, user_id, now)
        quota = settings.daily_token_quota
        if quota is not None:
            used = await self._usage.tokens_today(guild_id, user_id)
            if used + self.reservations.reserved_tokens((guild_id, user_id)) >= quota:
                self._admitted.pop((guild_id, user_id), None)
                if used >= quota:
                    raise Refused(
                        f"You've used your {quota:,} tokens for today on this server. "
                        "The quota resets at 00:00 UTC."
                    )
                raise Refused(
                    "Your answers in progress may use the rest of today's token quota. "
                    "Ask again when they finish."
                )

    def _remember(self, guild_id: int, user_id: int, now: datetime) -> None:
        self._admitted[guild_id, user_id] = now
        if len(self._admitted) > 10_000:  # older entries are past any cooldown and in the usage table
            horizon = now - timedelta(seconds=COOLDOWN_MAX)
            self._admitted = {k: t for k, t in self._admitted.items() if t > horizon}
