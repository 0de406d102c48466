"""Monthly budget: spend from the usage store and the price list, refusal, and alerts sent once each."""

import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.budget import REREAD_AFTER, Budget, MonthlySpend
from bot.db import Database
from bot.pricing import Price, PriceList, TokenCounts
from bot.settings import ChannelSettings
from bot.store.alerts import AlertStore
from bot.store.usage import UsageStore, UsageSummary
from tests.stores import GUILD, Clock, record

ALERTS = 77
# 1 USD per million prompt tokens: 100,000 tokens cost 0.10.
PRICES = PriceList("USD", {"m1": Price(1.0, 1.0)})
SETTINGS = ChannelSettings(model="m1", monthly_budget=1.0, alert_channel=ALERTS)


class Channel:
    def __init__(self) -> None:
        self.sent: list[tuple[int, str]] = []
        self.fail = False

    async def __call__(self, guild_id: int, channel_id: int, text: str) -> None:
        if self.fail:
            raise ConnectionError("Discord is down")
        assert guild_id == GUILD
        self.sent.append((channel_id, text))


async def spend(
    usage: UsageStore, clock: Clock, request_id: str, tokens: int, budget: Budget | None = None
) -> None:
    """An answer in the server: its usage row, and (as BudgetWatch does) the budget told it finished."""
    now = clock.now
    await record(usage, clock, request_id, at=now, prompt=tokens, completion=0)
    clock.now = now  # record() sets the shared test clock back
    if budget is not None:
        budget.month.add(GUILD, "m1", TokenCounts(1, tokens, 0))


async def test_alerts_at_80_and_100_percent_once_each_per_month(db: Database) -> None:
    clock = Clock(datetime(2025, 6, 15, 12, tzinfo=UTC))
    usage = UsageStore(db, clock=clock)
    budget = Budget(usage, AlertStore(db, clock=clock), PRICES, clock=clock)
    channel = Channel()

    await spend(usage, clock, "a", 700_000, budget)
    await budget.send_alerts(GUILD, SETTINGS, channel)
    assert channel.sent == []
    assert budget.refusal(await budget.spent(GUILD, SETTINGS), SETTINGS) is None

    await spend(usage, clock, "b", 150_000, budget)  # 0.85 USD
    await budget.send_alerts(GUILD, SETTINGS, channel)
    await budget.send_alerts(GUILD, SETTINGS, channel)
    assert channel.sent == [
        (ALERTS, "💸 Streamcord has used 80 % of this month's budget (0.85 USD of 1.00 USD).")
    ]

    await spend(usage, clock, "c", 200_000, budget)  # 1.05 USD
    channel.fail = True  # not delivered: tried again next time
    await budget.send_alerts(GUILD, SETTINGS, channel)
    channel.fail = False
    await budget.send_alerts(GUILD, SETTINGS, channel)
    assert len(channel.sent) == 2 and "used this month's budget (1.05 USD of 1.00 USD)" in channel.sent[1][1]
    refusal = budget.refusal(await budget.spent(GUILD, SETTINGS), SETTINGS)
    assert refusal and refusal.startswith("This server has used its monthly budget (1.05 USD of 1.00 USD).")

    # A restart (a new Budget on the same database) repeats nothing.
    restarted = Budget(usage, AlertStore(db, clock=clock), PRICES, clock=clock)
    await restarted.send_alerts(GUILD, SETTINGS, channel)
    assert len(channel.sent) == 2

    # A new month starts from zero.
    clock.now = datetime(2025, 7, 1, 0, 5, tzinfo=UTC)
    assert await budget.spent(GUILD, SETTINGS) == 0
    await spend(usage, clock, "d", 900_000, budget)
    await budget.send_alerts(GUILD, SETTINGS, channel)
    assert len(channel.sent) == 3 and "80 %" in channel.sent[2][1]


async def test_server_prices_and_unpriced_models(db: Database) -> None:
    clock = Clock(datetime(2025, 6, 15, 12, tzinfo=UTC))
    usage = UsageStore(db, clock=clock)
    budget = Budget(usage, AlertStore(db, clock=clock), PRICES, clock=clock)
    await spend(usage, clock, "a", 1_000_000)
    cheaper = dataclasses.replace(SETTINGS, prices={"m1": [0.5, 0.5, None]})
    assert await budget.spent(GUILD, cheaper) == pytest.approx(0.5)
    free = Budget(usage, AlertStore(db), PriceList("USD", {}), clock=clock)
    assert await free.spent(GUILD, SETTINGS) == 0  # an unknown model costs nothing


class CountingUsage(UsageStore):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.summaries = 0

    async def summary(self, **kwargs: Any) -> UsageSummary:
        self.summaries += 1
        return await super().summary(**kwargs)


async def test_the_month_is_read_once_and_kept_up_to_date_as_answers_finish(db: Database) -> None:
    clock = Clock(datetime(2025, 6, 15, 12, tzinfo=UTC))
    usage = CountingUsage(db, clock=clock)
    ticks = [0.0]
    month = MonthlySpend(usage, clock=clock, monotonic=lambda: ticks[0])
    await spend(usage, clock, "a", 100)

    assert (await month.by_model(GUILD))["m1"] == TokenCounts(1, 100, 0)
    for n in range(5):  # questions and answers: no more month-long reads
        await spend(usage, clock, f"b{n}", 10)
        month.add(GUILD, "m1", TokenCounts(1, 10, 0))
        assert (await month.by_model(GUILD))["m1"] == TokenCounts(2 + n, 110 + 10 * n, 0)
    assert usage.summaries == 1

    ticks[0] = REREAD_AFTER + 1  # read again now and then: what changed the table elsewhere shows
    await db.execute("UPDATE usage SET prompt_tokens = 1000 WHERE request_id = 'a'")
    assert (await month.by_model(GUILD))["m1"].prompt == 1050
    clock.now = datetime(2025, 7, 1, 0, 1, tzinfo=UTC)  # and at a new month
    assert await month.by_model(GUILD) == {}
    assert usage.summaries == 3


async def test_an_answer_finishing_during_the_read_is_not_lost(db: Database) -> None:
    clock = Clock(datetime(2025, 6, 15, 12, tzinfo=UTC))

    class Racing(CountingUsage):
        async def summary(self, **kwargs: Any) -> UsageSummary:
            read = await super().summary(**kwargs)  # misses the answer finishing meanwhile
            if self.summaries == 1:
                await spend(self, clock, "late", 5)
                month.add(GUILD, "m1", TokenCounts(1, 5, 0))
            return read

    usage = Racing(db, clock=clock)
    month = MonthlySpend(usage, clock=clock)
    assert await month.by_model(GUILD) == {}  # that read is not kept
    assert (await month.by_model(GUILD))["m1"] == TokenCounts(1, 5, 0)
