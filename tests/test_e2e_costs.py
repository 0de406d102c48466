"""Costs, budgets and retention end to end: the real bot against the loopback Discord and model servers."""

from __future__ import annotations

import contextlib
import csv
import io
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.db.sqlite import SqliteDatabase
from bot.usage_chart import HEIGHT_PX, WIDTH_PX
from fakes.llm_server import Scenario
from tests.e2e import (
    BLUE,
    ORANGE,
    World,
    add_row,
    bot_messages,
    chat_until_done,
    command,
    decode,
    embed_of,
    pixels_of,
    run_cli,
    running_bot,
    say,
    usage,
)


def price_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "prices.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


async def test_cost_for_a_mix_of_models(world: World, tmp_path: Path) -> None:
    prices = price_file(
        tmp_path, 'currency = "EUR"\n[models."fake-model-mini"]\ninput = 1000\noutput = 2000\n'
    )
    async with running_bot(world, PRICES_FILE=prices) as bot:
        world.llm.enqueue(Scenario(text="a b", prompt_tokens=1000))
        await chat_until_done(world, bot, "on the default model, which has no price")
        await say(world, "config set", {"key": "model", "value": "fake-model-mini"})
        world.llm.enqueue(Scenario(text="c d e", prompt_tokens=500))
        await chat_until_done(world, bot, "on the priced model")
        assert [r.body["model"] for r in world.llm.requests] == ["fake-model", "fake-model-mini"]

        server = embed_of(await usage(world, {"scope": "server"}, user=world.admin))
        # fake-model-mini: (500 × 1000 + 3 × 2000) / 1,000,000 = 0.506 EUR; fake-model unpriced.
        assert server["Cost"] == "0.51 EUR\nNo price for `fake-model`: counted as free"
        mine = embed_of(await usage(world, user=world.alice))
        assert mine["Cost"] == server["Cost"]

        text = await say(world, "config set", {"key": "prices", "value": "fake-model=10/20"})
        assert text == "`prices` applies to the whole server: set it with scope server"
        await say(world, "config set", {"key": "prices", "value": "fake-model=10/20", "scope": "server"})
        # + (1000 × 10 + 2 × 20) / 1,000,000 = 0.01004
        assert embed_of(await usage(world, {"scope": "server"}, user=world.admin))["Cost"] == "0.52 EUR"

    today = datetime.now(UTC).date().isoformat()
    result = run_cli("usage-export", "--since", today, DATABASE_PATH=str(world.db_path), PRICES_FILE=prices)
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(r["model"], r["cost"]) for r in rows] == [
        ("fake-model", "0.010040"),
        ("fake-model-mini", "0.506000"),
    ]


async def test_budget_refuses_when_spent_after_two_alerts(world: World, tmp_path: Path) -> None:
    alerts = world.discord.add_channel(world.guild_id, "bot-alerts")
    # One prompt token costs 0.01: a budget of 10 is 1,000 tokens.
    prices = price_file(tmp_path, '[models."fake-model"]\ninput = 10000\noutput = 0\n')
    async with running_bot(world, PRICES_FILE=prices) as bot:
        await say(world, "config set", {"key": "monthly_budget", "value": "10", "scope": "server"})
        await say(world, "config set", {"key": "alert_channel", "value": f"<#{alerts}>", "scope": "server"})
        world.llm.enqueue(Scenario(text="x", prompt_tokens=700))
        await chat_until_done(world, bot, "70 %: no alert yet")
        world.llm.enqueue(Scenario(text="x", prompt_tokens=150))
        await chat_until_done(world, bot, "85 %")
        await world.discord.wait_for(lambda: len(bot_messages(world, alerts)) == 1, what="80 % alert")
        world.llm.enqueue(Scenario(text="x", prompt_tokens=200))
        await chat_until_done(world, bot, "105 %")
        await world.discord.wait_for(lambda: len(bot_messages(world, alerts)) == 2, what="100 % alert")
        refusal = await chat_until_done(world, bot, "one more?", user=world.bob)
        assert refusal.ephemeral
        assert refusal.content.startswith("This server has used its monthly budget (10.50 USD of 10.00 USD).")
        assert len(world.llm.requests) == 3

    first, second = (m.content for m in bot_messages(world, alerts))
    assert first == "💸 Streamcord has used 80 % of this month's budget (8.50 USD of 10.00 USD)."
    assert second.startswith("💸 Streamcord has used this month's budget (10.50 USD of 10.00 USD).")

    # After a restart: still refused, and no alert repeats.
    async with running_bot(world, PRICES_FILE=prices) as bot:
        refusal = await chat_until_done(world, bot, "and now?")
        assert refusal.content.startswith("This server has used its monthly budget")
        await say(world, "config set", {"key": "monthly_budget", "value": "20", "scope": "server"})
        world.llm.enqueue(Scenario(text="x", prompt_tokens=1))
        await chat_until_done(world, bot, "raised: answered")
        assert len(world.llm.requests) == 4
        await bot.budget_watch.wait_idle()
    assert len(bot_messages(world, alerts)) == 2


async def test_retention_prunes_old_rows_and_keeps_the_totals(world: World) -> None:
    db = await SqliteDatabase.open(world.db_path)
    now = datetime.now(UTC)
    try:
        for days_ago, tokens in ((90, 100), (45, 20), (2, 3)):
            await add_row(
                db, now - timedelta(days=days_ago), world.alice, world.channel_id, world.guild_id, tokens
            )
    finally:
        await db.close()

    def rows_left() -> int:
        with contextlib.closing(sqlite3.connect(world.db_path)) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM usage").fetchone()[0])

    async with running_bot(world, USAGE_RETENTION_DAYS="30"):
        await world.discord.wait_for(lambda: rows_left() == 1, what="the prune at start")
        everything = embed_of(await usage(world, {"period": "all"}, user=world.alice))
        assert everything["Requests"] == "3 (3 completed)"
        assert everything["Tokens"] == "123 (123 prompt + 0 completion)"
        month = embed_of(await usage(world, {"period": "30d"}, user=world.alice))
        assert month["Tokens"] == "3 (3 prompt + 0 completion)"
        server = embed_of(await usage(world, {"period": "all", "scope": "server"}, user=world.admin))
        assert server["Top users"] == f"1. <@{world.alice}>: 123 tokens"


async def test_usage_show_for_other_people_still_needs_manage_server(world: World) -> None:
    async with running_bot(world):
        reply = await command(world, "usage show", {"scope": "server", "chart": "tokens"}, user=world.bob)
        assert reply.ephemeral and reply.content.startswith("You need the Manage Server permission")


async def test_usage_chart_is_a_png_of_tokens_or_cost(world: World, tmp_path: Path) -> None:
    prices = price_file(tmp_path, '[models."fake-model"]\ninput = 1000\noutput = 1000\n')
    async with running_bot(world, PRICES_FILE=prices) as bot:
        world.llm.enqueue(Scenario(text="a b c", prompt_tokens=5000))
        await chat_until_done(world, bot, "something to draw")
        await add_row(
            bot.db, datetime.now(UTC) - timedelta(days=3), world.alice, world.channel_id, world.guild_id, 900
        )
        for chart, unit in (("tokens", "tokens"), ("cost", "USD")):
            reply = await command(world, "usage show", {"period": "7d", "chart": chart}, user=world.alice)
            assert embed_of(reply)["Tokens"] == "5,903 (5,900 prompt + 3 completion)"
            [attachment] = reply.attachments
            assert (
                attachment.filename == "usage.png"
                and reply.embeds[0]["image"]["url"] == "attachment://usage.png"
            )
            picture = decode(attachment.data)
            assert picture.shape == (HEIGHT_PX, WIDTH_PX, 3)
            assert pixels_of(picture, BLUE) > 1000, unit  # two bars of the one model, in the first colour
            assert pixels_of(picture, ORANGE) == 0  # no second model
