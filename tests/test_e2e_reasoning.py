"""Reasoning models end to end: the thinking never shows or goes back to the model; a live line says so."""

from __future__ import annotations

import pytest

from bot.client import StreamcordBot
from fakes.llm_server import LLMRequest, Scenario
from tests.e2e import World, ask, finished, usage_rows

ANSWER = "The answer is 4."
THOUGHTS = ["I ponder", " the sum", " of two", " and two,", " carefully"] * 3
INLINE = ["  <", "thi", "nk>I ponder", " the sum", " of two </th", "in", "k", ">\n", "\nThe answer", " is 4."]
SCENARIOS = {
    "reasoning_content": Scenario(text=ANSWER, reasoning=THOUGHTS, tokens_per_second=6),
    "reasoning": Scenario(text=ANSWER, reasoning=THOUGHTS, reasoning_field="reasoning", tokens_per_second=6),
    "inline": Scenario(tokens=INLINE, tokens_per_second=4),
}
THINKING_WORDS = ("ponder", "sum", "carefully", "<th", "nk>")


def first_thought_at(rec: LLMRequest) -> float:
    at = rec.first_reasoning_at if rec.scenario.reasoning else rec.first_token_at
    assert at is not None
    return at


@pytest.mark.parametrize("form", list(SCENARIOS))
async def test_thinking_shows_as_a_live_line_never_as_text(
    world: World, bot: StreamcordBot, form: str
) -> None:
    world.llm.enqueue(SCENARIOS[form])
    reply = await ask(world, "what is 2+2?")
    assert await finished(world, bot, reply) == ANSWER

    versions = world.discord.messages[reply].versions
    assert not [v.content for v in versions if any(w in v.content for w in THINKING_WORDS)]
    thinking = [v for v in versions if v.content.startswith("💭 thinking…")]
    assert thinking, [v.content for v in versions]
    assert thinking[0].at - first_thought_at(world.llm.requests[0]) <= 1.5
    [row] = await usage_rows(bot.db)
    if form != "inline":
        assert row["reasoning_tokens"] == len(THOUGHTS)
        assert row["completion_tokens"] == len(THOUGHTS) + world.llm.requests[0].tokens_sent

    world.llm.enqueue(Scenario(text="Yes."))
    await finished(world, bot, await ask(world, "sure?", reply_to=reply))
    history = world.llm.requests[1].body["messages"]
    assert {"role": "assistant", "content": ANSWER} in history
    assert not any(w in str(history) for w in THINKING_WORDS)


async def test_summary_mode_keeps_how_long_it_thought(world: World, bot: StreamcordBot) -> None:
    await bot.settings.set(world.guild_id, "channel", world.channel_id, "reasoning", "summary", world.admin)
    world.llm.enqueue(SCENARIOS["reasoning_content"])
    reply = await ask(world, "what is 2+2?")
    answer, line = (await finished(world, bot, reply)).rsplit("\n", 1)
    assert answer == ANSWER and line.startswith("💭 thought for ") and line.endswith(" s")

    world.llm.enqueue(Scenario(text="Yes."))
    await finished(world, bot, await ask(world, "sure?", reply_to=reply))
    assert {"role": "assistant", "content": ANSWER} in world.llm.requests[1].body["messages"]


async def test_stop_while_thinking(world: World, bot: StreamcordBot) -> None:
    world.llm.enqueue(Scenario(text=ANSWER, reasoning=THOUGHTS * 10, tokens_per_second=10))
    reply = await ask(world, "what is 2+2?")
    await world.discord.wait_for(
        lambda: world.discord.messages[reply].content.startswith("💭"), what="the thinking line"
    )
    await world.discord.add_reaction(world.channel_id, reply, world.alice, "🛑")
    rec = world.llm.requests[0]
    await world.llm.wait_for(lambda: rec.disconnected_at is not None, what="upstream closed")
    content = await finished(world, bot, reply)
    assert content.startswith("⏹ stopped by") and "thinking" not in content
