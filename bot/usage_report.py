"""What /usage shows, without Discord: whose usage over which period, its summary and cost at the server's
prices, and the per-day chart (tokens or cost per model). The cog only words it and sends it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from bot.budget import server_prices
from bot.db import utcnow
from bot.pricing import Cost, Price, PriceList, TokenCounts
from bot.store.settings import SettingsStore
from bot.store.usage import Period, UsageStore, UsageSummary, period_since

Scope = Literal["me", "channel", "server"]
ChartKind = Literal["tokens", "cost"]
PERIODS: dict[Period, str] = {
    "today": "today (UTC)",
    "7d": "the last 7 days",
    "30d": "the last 30 days",
    "all": "all time",
}


@dataclass(frozen=True)
class ReportRequest:
    guild_id: int | None
    channel_id: int | None
    asker: int  # who ran /usage
    period: Period = "today"
    scope: Scope = "me"
    user: int | None = None  # someone else's usage (needs Manage Server)
    user_name: str | None = None  # how to name ``user`` in the title

    @property
    def subject(self) -> int | None:
        """Whose usage: one user's, or None for the channel's or server's."""
        return self.user if self.user is not None else self.asker if self.scope == "me" else None

    @property
    def about_others(self) -> bool:
        return self.scope != "me" or self.subject != self.asker

    @property
    def in_channel(self) -> int | None:
        return self.channel_id if self.scope == "channel" else None

    @property
    def title(self) -> str:
        if self.subject == self.asker:
            whose = "Your usage"
        elif self.subject is not None:
            whose = f"Usage by {self.user_name or self.subject}"
        else:
            whose = "Usage in this channel" if self.scope == "channel" else "Usage in this server"
        here = " in this channel" if self.scope == "channel" and self.subject else ""
        return f"{whose}{here}, {PERIODS[self.period]}"


@dataclass(frozen=True)
class UsageReport:
    title: str
    summary: UsageSummary
    cost: Cost
    prices: PriceList  # for the money's currency and format
    show_top_users: bool  # a channel's or the server's usage
    since: datetime | None
    now: datetime
    overrides: dict[str, Price]


class UsageReports:
    def __init__(self, usage: UsageStore, settings: SettingsStore, prices: PriceList) -> None:
        self._usage = usage
        self._settings = settings
        self._prices = prices

    async def report(self, request: ReportRequest) -> UsageReport:
        now = utcnow()
        since = period_since(request.period, now)
        summary = await self._usage.summary(
            guild_id=request.guild_id, user_id=request.subject, channel_id=request.in_channel, since=since
        )
        overrides = await server_prices(self._settings, request.guild_id)
        return UsageReport(
            title=request.title,
            summary=summary,
            cost=self._prices.cost(summary.by_model, overrides),
            prices=self._prices,
            show_top_users=request.subject is None,
            since=since,
            now=now,
            overrides=overrides,
        )

    async def chart(self, request: ReportRequest, report: UsageReport, kind: ChartKind) -> bytes:
        """A PNG of the report's days, stacked by model (rendered off the event loop)."""
        from bot import usage_chart  # matplotlib is large: loaded on the first chart, not at start

        days = await self._usage.daily(
            guild_id=request.guild_id,
            user_id=request.subject,
            channel_id=request.in_channel,
            since=report.since,
        )
        prices, overrides = report.prices, report.overrides

        def cost(model: str, counts: TokenCounts) -> float:
            return prices.request_cost(model, counts, overrides) or 0.0

        return await asyncio.to_thread(
            usage_chart.render,
            days,
            first=report.since.date() if report.since else min(days, default=report.now.date()),
            last=report.now.date(),
            measure=cost if kind == "cost" else usage_chart.tokens,
            title=f"{'Cost' if kind == 'cost' else 'Tokens'} per day, by model",
            unit=prices.currency if kind == "cost" else "tokens",
        )
