"""Money: what a server spent this month, refusing answers past its monthly_budget, and the 80 % / 100 %
warnings to its alert_channel (sent once each per month, remembered in the database).

A server's month is read from the usage table once and then kept up to date as its answers finish (every
answer in a server finishes in the process owning its shard), so admission prices it without a month-long
query per question; it is read again now and then, in case something else changed the table."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from bot.db import utcnow
from bot.pricing import Cost, Price, PriceList, TokenCounts, overrides_from_json
from bot.settings import ChannelSettings
from bot.store.alerts import AlertStore
from bot.store.settings import SettingsStore
from bot.store.usage import UsageStore, UsageSummary
from bot.streaming.observer import FinishedAnswer, StreamObserver

log = logging.getLogger(__name__)

THRESHOLDS = (80, 100)  # percent of monthly_budget
REREAD_AFTER = 600.0  # seconds a server's cached month is trusted before it is read from the table again
# Sends a warning to a server's channel: (server, channel, text); raises on failure (the alert is then tried
# again after the next answer), also when the channel is not the server's.
Notify = Callable[[int, int, str], Awaitable[None]]


async def server_prices(settings: SettingsStore, guild_id: int | None) -> dict[str, Price]:
    """The server's own prices (its `prices` setting); direct messages have none."""
    server = await settings.server(guild_id) if guild_id is not None else {}
    return overrides_from_json(server.get("prices"))


def start_of_month(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


@dataclass
class _Month:
    month: datetime
    read_at: float  # monotonic
    by_model: dict[str, TokenCounts] = field(default_factory=dict)


class MonthlySpend:
    """Each server's tokens by model this calendar month (UTC), cached."""

    def __init__(
        self,
        usage: UsageStore,
        *,
        clock: Callable[[], datetime] = utcnow,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._usage = usage
        self._clock = clock
        self._monotonic = monotonic
        self._months: dict[int, _Month] = {}
        self._finished: dict[int, int] = {}  # answers finished per server, to tell a read that raced one

    async def by_model(self, guild_id: int) -> Mapping[str, TokenCounts]:
        month = start_of_month(self._clock())
        cached = self._months.get(guild_id)
        if cached and cached.month == month and self._monotonic() - cached.read_at < REREAD_AFTER:
            return cached.by_model
        finished = self._finished.get(guild_id, 0)
        summary = await self._usage.summary(guild_id=guild_id, since=month)
        fresh = _Month(month, self._monotonic(), dict(summary.by_model))
        if self._finished.get(guild_id, 0) == finished:  # else the read may have missed that answer
            self._months[guild_id] = fresh
        return fresh.by_model

    def add(self, guild_id: int, model: str, tokens: TokenCounts) -> None:
        """An answer in the server finished (its usage row is written, or queued to be)."""
        self._finished[guild_id] = self._finished.get(guild_id, 0) + 1
        cached = self._months.get(guild_id)
        if cached is None or cached.month != start_of_month(self._clock()):
            return  # read whole next time
        had = cached.by_model.get(model, TokenCounts())
        cached.by_model[model] = TokenCounts(
            had.requests + tokens.requests,
            had.prompt + tokens.prompt,
            had.completion + tokens.completion,
            had.reasoning + tokens.reasoning,
        )


class Budget:
    def __init__(
        self,
        usage: UsageStore,
        alerts: AlertStore,
        prices: PriceList,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._alerts = alerts
        self.prices = prices
        self._clock = clock
        self.month = MonthlySpend(usage, clock=clock)

    def cost(self, summary: UsageSummary, settings: ChannelSettings) -> Cost:
        return self.prices.cost(summary.by_model, overrides_from_json(settings.prices))

    async def spent(self, guild_id: int, settings: ChannelSettings) -> float:
        """This calendar month's (UTC) spend in the server, at the server's prices of now."""
        by_model = await self.month.by_model(guild_id)
        return self.prices.cost(by_model, overrides_from_json(settings.prices)).amount

    def refusal(self, spent: float, settings: ChannelSettings) -> str | None:
        budget = settings.monthly_budget
        if budget is None or spent < budget:
            return None
        return (
            f"This server has used its monthly budget ({self.prices.money(spent)} of "
            f"{self.prices.money(budget)}). Answers resume on the 1st (UTC), or when an admin raises it."
        )

    async def send_alerts(self, guild_id: int, settings: ChannelSettings, notify: Notify) -> None:
        """Warn the alert channel for every threshold crossed and not yet announced this month."""
        budget, channel = settings.monthly_budget, settings.alert_channel
        if budget is None or channel is None:
            return
        spent = await self.spent(guild_id, settings)
        month = start_of_month(self._clock()).strftime("%Y-%m")
        for threshold in THRESHOLDS:
            if spent < budget * threshold / 100 or not await self._alerts.claim(guild_id, month, threshold):
                continue
            try:
                await notify(guild_id, channel, self._alert_text(threshold, spent, budget))
            except Exception:
                await self._alerts.release(guild_id, month, threshold)
                log.warning(
                    "Could not send the %d%% budget alert to channel %s", threshold, channel, exc_info=True
                )
            else:
                log.info("Sent the %d%% budget alert for server %s", threshold, guild_id)

    def _alert_text(self, threshold: int, spent: float, budget: float) -> str:
        money = f"{self.prices.money(spent)} of {self.prices.money(budget)}"
        if threshold >= 100:
            return f"💸 Streamcord has used this month's budget ({money}). New answers wait until the 1st."
        return f"💸 Streamcord has used {threshold} % of this month's budget ({money})."


class BudgetWatch(StreamObserver):
    """After every answer in a server: counts its tokens into the server's month, and sends the warnings
    a budget has crossed into."""

    def __init__(
        self, budget: Budget, settings: SettingsStore, defaults: ChannelSettings, notify: Notify
    ) -> None:
        self._budget = budget
        self._settings = settings
        self._defaults = defaults
        self._notify = notify
        self._checks: set[asyncio.Task[None]] = set()

    def answer_finished(self, answer: FinishedAnswer) -> None:
        guild_id = answer.requester.guild_id
        if guild_id is None:
            return
        tokens = TokenCounts(1, answer.prompt_tokens, answer.completion_tokens, answer.reasoning_tokens)
        self._budget.month.add(guild_id, answer.model, tokens)
        task = asyncio.create_task(self._check(guild_id, answer.requester.channel_id))
        self._checks.add(task)
        task.add_done_callback(self._checks.discard)

    async def _check(self, guild_id: int, channel_id: int) -> None:
        try:
            settings = await self._settings.get(guild_id, channel_id, self._defaults)
            await self._budget.send_alerts(guild_id, settings, self._notify)
        except Exception:
            log.exception("Budget check for server %s failed", guild_id)

    async def wait_idle(self) -> None:
        """Let the checks under way finish (at shutdown, while the database is still open)."""
        if self._checks:
            await asyncio.wait(list(self._checks))
