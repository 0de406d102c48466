"""A struggling model server end to end: the bot's own retries shown as they happen, a time budget, the
fallback model and the circuit breaker (real discord.py and openai against the loopback servers)."""

from __future__ import annotations

import pytest

from bot.circuit import CircuitState
from fakes.discord import FakeMessage
from fakes.llm_server import Outage, Scenario
from tests.e2e import World, chat, command, embed_of, finished, running_bot, usage_rows

ANSWER = "The server is back and here is the answer."


def first_version_with(message: FakeMessage, needle: str) -> float:
    """When a version containing ``needle`` was first shown."""
    return next(v.at for v in message.versions if needle in v.content)


@pytest.mark.parametrize(
    ("outage", "status_line"),
    [
        (Outage(status=500, requests=1), "⚠️ the model server failed (500): retrying in 1 s (1 of 2)"),
        (
            Outage(status=429, requests=1, retry_after=1.5),
            "⚠️ the model server is overloaded (429): retrying in 2 s (1 of 2)",
        ),
        # A gateway retrying upstream itself: each failure takes a while.
        (
            Outage(status=502, requests=1, fail_delay=0.5),
            "⚠️ the model server failed (502): retrying in 1 s (1 of 2)",
        ),
    ],
    ids=["500", "429-retry-after", "slow-502"],
)
async def test_a_failure_is_shown_at_once_then_the_answer_streams(
    world: World, outage: Outage, status_line: str
) -> None:
    world.llm.start_outage(outage)
    world.llm.enqueue(Scenario(text=ANSWER))
    async with running_bot(world, LLM_MAX_RETRIES="2") as bot:
        message_id = await chat(world, "hello")
        assert await finished(world, bot, message_id) == ANSWER
        [failed, answered] = world.llm.requests
        message = world.discord.messages[message_id]
        assert failed.status == outage.status and failed.finished_at is not None
        assert first_version_with(message, status_line) - failed.finished_at < 1.0
        # The retry waited as long as it said (Retry-After when there is one).
        assert answered.started_at - failed.finished_at >= (outage.retry_after or 1.0) - 0.05
        [row] = await usage_rows(bot.db)
        assert row["status"] == "completed" and row["model"] == "fake-model"


async def test_a_long_outage_ends_in_an_error_inside_the_budget(world: World) -> None:
    world.llm.start_outage(Outage(status=500, fail_delay=0.3))
    async with running_bot(world, LLM_MAX_RETRIES="5", LLM_RETRY_BUDGET="3") as bot:
        message_id = await chat(world, "hello")
        content = await finished(world, bot, message_id)
    assert content.endswith("⚠️ The model server had an error (HTTP 500). Try again in a moment.")
    # 1 s + 0.3 s fits the 3 s budget after the first failure; the next retry (2 s + 0.3 s more) would not.
    first, last = world.llm.requests
    assert first.finished_at is not None and last.finished_at is not None
    assert last.finished_at - first.finished_at <= 3.0
    message = world.discord.messages[message_id]
    assert first_version_with(message, "retrying") - first.finished_at < 1.0
    assert message.versions[-1].at - first.finished_at <= 3.0


@pytest.mark.parametrize(
    ("scenario", "error"),
    [
        (Scenario(status=401), "rejected the bot's API key"),
        (Scenario(context_length_exceeded=True), "too long for this model"),
    ],
    ids=["auth", "context-length"],
)
async def test_errors_retrying_cannot_fix_are_shown_at_once_with_one_request(
    world: World, scenario: Scenario, error: str
) -> None:
    world.llm.enqueue(scenario)
    async with running_bot(world, LLM_MAX_RETRIES="2") as bot:
        message_id = await chat(world, "hello")
        content = await finished(world, bot, message_id)
    assert error in content
    assert len(world.llm.requests) == 1
    message = world.discord.messages[message_id]
    assert not any("retrying" in v.content for v in message.versions)
    assert error in message.versions[0].content, "the first thing shown is the error"


async def test_the_fallback_answers_labelled_and_usage_records_its_model(world: World) -> None:
    world.llm.start_outage(Outage(status=503, models=frozenset({"fake-model"})))
    world.llm.enqueue(Scenario(text="From the smaller model."))
    async with running_bot(world) as bot:
        await bot.settings.set(
            world.guild_id, "channel", world.channel_id, "fallback_model", "fake-model-mini", world.admin
        )
        message_id = await chat(world, "hello")
        content = await finished(world, bot, message_id)
        [row] = await usage_rows(bot.db)
    assert content == "From the smaller model.\n*(answered by the fallback model `fake-model-mini`)*"
    assert [r.body["model"] for r in world.llm.requests] == ["fake-model", "fake-model-mini"]
    message = world.discord.messages[message_id]
    assert any("asking `fake-model-mini` instead" in v.content for v in message.versions)
    assert row["model"] == "fake-model-mini" and row["status"] == "completed"
    assert row["completion_tokens"] == world.llm.requests[1].tokens_sent


async def test_the_fallback_retries_only_in_what_is_left_of_the_answers_budget(world: World) -> None:
    world.llm.start_outage(Outage(status=500))
    async with running_bot(world, LLM_MAX_RETRIES="5", LLM_RETRY_BUDGET="1.5") as bot:
        await bot.settings.set(
            world.guild_id, "channel", world.channel_id, "fallback_model", "fake-model-mini", world.admin
        )
        message_id = await chat(world, "hello")
        content = await finished(world, bot, message_id)
        [row] = await usage_rows(bot.db)
    # fake-model fails, retries after 1 s (inside 1.5 s), fails; the next retry (2 s more) would not fit.
    # The fallback's first failure comes 1 s into the budget: a 1-s retry would not fit either.
    assert [r.body["model"] for r in world.llm.requests] == ["fake-model", "fake-model", "fake-model-mini"]
    assert "The model server had an error (HTTP 500)" in content
    assert row["status"] == "error" and row["model"] == "fake-model"  # not the fallback that failed too


async def test_the_circuit_opens_during_an_outage_and_a_probe_closes_it(world: World) -> None:
    world.llm.start_outage(Outage(status=500))
    async with running_bot(world, LLM_CIRCUIT_FAILURES="5", LLM_CIRCUIT_COOLDOWN="3") as bot:
        contents = [await finished(world, bot, await chat(world, f"question {n}")) for n in range(10)]
        assert all("HTTP 500" in c for c in contents[:5])
        assert all("The model server is unavailable. Try again in about" in c for c in contents[5:])
        assert len(world.llm.requests) == 5, "refused questions reach no model server"
        rows = await usage_rows(bot.db)
        assert all(r["prompt_tokens"] == r["completion_tokens"] == 0 for r in rows[5:])
        [circuit] = bot.models.circuits()
        assert circuit.state is CircuitState.OPEN

        world.llm.end_outage()
        world.llm.enqueue(Scenario(text=ANSWER))
        world.llm.enqueue(Scenario(text="And the next one."))
        await world.discord.wait_for(lambda: bot.models.circuits()[0].retry_in == 0, what="cool-down over")
        assert await finished(world, bot, await chat(world, "probe")) == ANSWER
        assert bot.models.circuits()[0].state is CircuitState.CLOSED
        assert await finished(world, bot, await chat(world, "after")) == "And the next one."
        assert len(world.llm.requests) == 7
        assert bot.models.errors.counts() == {"server error": 5, "refused: circuit open": 5}


async def test_the_fallback_has_its_own_circuit_and_answers_while_the_main_one_is_open(world: World) -> None:
    world.llm.start_outage(Outage(status=500, models=frozenset({"fake-model"})))
    async with running_bot(world, LLM_CIRCUIT_FAILURES="1", LLM_CIRCUIT_COOLDOWN="600") as bot:
        await bot.settings.set(
            world.guild_id, "guild", world.guild_id, "fallback_model", "fake-model-mini", world.admin
        )
        await finished(world, bot, await chat(world, "first"))
        second = await chat(world, "second")
        content = await finished(world, bot, second)
        states = {c.name.split(" ")[0]: c.state for c in bot.models.circuits()}
    assert content == f"{Scenario().text}\n*(answered by the fallback model `fake-model-mini`)*"
    assert [r.body["model"] for r in world.llm.requests] == [
        "fake-model",
        "fake-model-mini",
        "fake-model-mini",
    ]
    versions = world.discord.messages[second].versions
    assert any("the model is unavailable: asking `fake-model-mini` instead" in v.content for v in versions)
    assert states == {"fake-model": CircuitState.OPEN, "fake-model-mini": CircuitState.CLOSED}


async def test_admins_see_the_last_hours_model_errors_and_the_fallback_setting(world: World) -> None:
    world.llm.start_outage(Outage(status=429, requests=1))
    async with running_bot(world) as bot:
        await finished(world, bot, await chat(world, "hello"))
        admin = embed_of(await command(world, "usage show", {"scope": "server"}, user=world.admin))
        member = embed_of(await command(world, "usage show", user=world.alice))
        refused = await command(world, "config set", {"key": "fallback_model", "value": "nope"})
        accepted = await command(world, "config set", {"key": "fallback_model", "value": "fake-model-mini"})
        shown = await command(world, "config show")
    assert admin["Model errors, last hour (whole bot)"] == "rate limited: 1"
    assert "Model errors, last hour (whole bot)" not in member
    assert "has no model `nope`" in refused.content
    assert accepted.content.startswith("Set `fallback_model` to `fake-model-mini` for this channel")
    assert "`fallback_model` = `fake-model-mini` (channel)" in shown.content
