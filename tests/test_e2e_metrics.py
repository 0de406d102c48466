"""/metrics scraped from the running bot during a stream, and /healthz: real clients on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from bot.client import StreamcordBot
from fakes.llm_server import Outage, Scenario
from tests.e2e import STORY, World, chat, healthz, running_bot, samples, wait_final, wait_idle


@pytest.fixture
async def bot(world: World) -> AsyncIterator[StreamcordBot]:
    async with running_bot(world, METRICS_PORT="0") as running:
        yield running


async def scrape(bot: StreamcordBot) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{bot.metrics_port}/metrics") as response,
    ):
        assert response.status == 200
        return samples(await response.text())


async def test_metrics_move_during_a_stream(world: World, bot: StreamcordBot) -> None:
    before = await scrape(bot)
    assert before[("streamcord_answers_in_flight", ())] == 0
    world.llm.enqueue(Scenario(text=STORY, tokens_per_second=40))
    message_id = await chat(world, "tell me a story")
    message = world.discord.messages[message_id]
    await world.discord.wait_for(lambda: "word3" in message.content, what="text on screen")

    during = await scrape(bot)
    assert during[("streamcord_answers_in_flight", ())] == 1
    assert during[("streamcord_answers_queued", ())] == 0
    assert during[("streamcord_first_text_seconds_count", ())] == 1
    assert sum(v for (name, _), v in during.items() if name == "streamcord_discord_requests_total") > sum(
        v for (name, _), v in before.items() if name == "streamcord_discord_requests_total"
    )

    await wait_final(world, message_id)
    await wait_idle(world, bot)
    after = await scrape(bot)
    [request] = world.llm.requests
    assert after[("streamcord_answers_total", (("outcome", "completed"),))] == 1
    assert after[("streamcord_tokens_total", (("direction", "completion"),))] == request.tokens_sent
    assert after[("streamcord_tokens_total", (("direction", "prompt"),))] > 0
    assert after[("streamcord_answers_in_flight", ())] == 0
    assert after[("streamcord_display_lag_seconds_count", ())] >= 2  # the stream took several edits
    assert after[("streamcord_display_lag_seconds_sum", ())] > 0
    requests = "streamcord_discord_requests_total"
    statuses = {labels[0][1] for (name, labels), _ in after.items() if name == requests}
    assert statuses and statuses <= {"200", "204", "429"}  # REST only: not the gateway's upgrade
    assert ("streamcord_event_loop_lag_seconds", ()) in after


async def test_model_errors_are_counted_by_kind(world: World, bot: StreamcordBot) -> None:
    world.llm.enqueue(Scenario(status=429))
    message_id = await chat(world, "rate limited")
    await wait_final(world, message_id)
    await wait_idle(world, bot)
    seen = await scrape(bot)
    # LLM_MAX_RETRIES is 0 in the tests: one request, one error, classified by bot/model_retry.py.
    assert seen[("streamcord_model_errors_total", (("kind", "rate limited"),))] == 1
    assert seen[("streamcord_answers_total", (("outcome", "error"),))] == 1


async def test_healthz_ok_while_connected(bot: StreamcordBot) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{bot.metrics_port}/healthz") as response,
    ):
        assert (response.status, await response.text()) == (200, "ok\n")


async def test_healthz_is_503_while_the_gateway_is_down(world: World, bot: StreamcordBot) -> None:
    ready_before = world.discord.ready_count
    await world.discord.gateway_down()
    await world.discord.wait_for(lambda: bot.gateway_problem() is not None, what="the bot saw the gateway go")
    assert await healthz(bot) == (503, "gateway disconnected\n")
    world.discord.gateway_up()
    await world.discord.wait_for(lambda: world.discord.ready_count > ready_before, timeout=30, what="resumed")
    await world.discord.wait_for(lambda: bot.gateway_problem() is None, what="the bot back on the gateway")
    assert await healthz(bot) == (200, "ok\n")


async def test_healthz_and_metrics_show_an_open_model_circuit(world: World) -> None:
    """One model down: still 200 (the fallback answers), the circuit listed; every model down: 503."""
    world.llm.start_outage(Outage(status=500, models=frozenset({"fake-model"})))
    async with running_bot(
        world, METRICS_PORT="0", LLM_CIRCUIT_FAILURES="1", LLM_CIRCUIT_COOLDOWN="600"
    ) as bot:
        assert await healthz(bot) == (200, "ok\n")
        await chat(world, "first")
        await wait_idle(world, bot)
        main = f"fake-model at {world.llm.base_url}"
        assert await healthz(bot) == (
            503,
            f"every model circuit is open\nmodel circuit open: {main} (next probe in 600 s)\n",
        )
        await bot.settings.set(
            world.guild_id, "guild", world.guild_id, "fallback_model", "fake-model-mini", world.admin
        )
        await chat(world, "second")
        await wait_idle(world, bot)
        assert await healthz(bot) == (200, f"ok\nmodel circuit open: {main} (next probe in 600 s)\n")
        seen = await scrape(bot)
    assert seen[("streamcord_model_circuit_open", (("circuit", main),))] == 1
    assert seen[("streamcord_model_circuit_open", (("circuit", main.replace("model", "model-mini")),))] == 0
