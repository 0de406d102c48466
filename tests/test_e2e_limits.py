"""Answers that end early end labelled: the output limit (and continuing past it), a content filter, and
runaway streams (MAX_REPLY_PAGES, LLM_DEADLINE) closed upstream."""

from __future__ import annotations

from bot.client import StreamcordBot
from bot.status import CONTENT_FILTER, OUTPUT_LIMIT, too_long, too_slow
from fakes.llm_server import Scenario, tokenize
from tests.e2e import STORY, World, answers, bot_messages, mention, running_bot, usage_rows


async def test_cut_off_answer_continues_on_a_reply_and_on_fast_forward(
    world: World, bot: StreamcordBot
) -> None:
    await bot.settings.set(world.guild_id, "channel", world.channel_id, "max_tokens", "5", world.admin)
    world.llm.default = Scenario(text=STORY, obey_max_tokens=True)
    words = tokenize(STORY)
    await mention(world, "tell a story")
    [first] = await answers(world, bot, 1)
    assert first == "".join(words[:5]) + "\n" + OUTPUT_LIMIT

    await world.discord.post_message(
        world.channel_id, world.alice, "Continue", reply_to=bot_messages(world)[0].id
    )
    second = (await answers(world, bot, 2))[1]
    assert (
        second == "".join(words[:5]) + "\n" + OUTPUT_LIMIT
    )  # the fake model starts over; the bot doesn't care
    messages = world.llm.requests[1].body["messages"]
    assert messages[-3:] == [
        {"role": "user", "content": "tell a story", "name": "Alice"},
        {"role": "assistant", "content": "".join(words[:5])},
        {"role": "user", "content": "continue"},
    ]
    continuation = bot_messages(world)[1]
    assert continuation.reference_id == bot_messages(world)[0].id  # the next message of that answer

    await world.discord.add_reaction(world.channel_id, continuation.id, world.bob, "⏩")  # not the requester
    # A barrier: an answer to a mention sent after Bob's ⏩; had his ⏩ continued the answer, that
    # continuation would be one more request and message by the time this answer is done.
    world.llm.enqueue(Scenario(text="Pong."))
    await mention(world, "ping")
    assert (await answers(world, bot, 3))[2] == "Pong."
    assert len(world.llm.requests) == 3

    await world.discord.add_reaction(world.channel_id, continuation.id, world.alice, "⏩")
    await answers(world, bot, 4)
    assert len(world.llm.requests) == 4
    assert world.llm.requests[3].body["messages"][-2:] == [
        {"role": "assistant", "content": "".join(words[:5])},
        {"role": "user", "content": "continue"},
    ]
    assert bot_messages(world)[3].reference_id == continuation.id


async def test_a_reply_to_a_continuation_sees_the_whole_continued_answer(
    world: World, bot: StreamcordBot
) -> None:
    await bot.settings.set(world.guild_id, "channel", world.channel_id, "max_tokens", "5", world.admin)
    world.llm.default = Scenario(text=STORY, obey_max_tokens=True)
    first = "".join(tokenize(STORY)[:5])
    await mention(world, "tell a story")
    await answers(world, bot, 1)
    await mention(world, "continue", reply_to=bot_messages(world)[0].id)
    await answers(world, bot, 2)
    world.llm.default = Scenario(text="The end.")
    await mention(world, "and then?", reply_to=bot_messages(world)[1].id)
    await answers(world, bot, 3)
    assert world.llm.requests[2].body["messages"][-3:] == [
        {"role": "user", "content": "tell a story", "name": "Alice"},
        {"role": "assistant", "content": f"{first} {first}"},  # both parts, without the cut-off line
        {"role": "user", "content": "and then?", "name": "Alice"},
    ]


async def test_content_filter_has_its_own_label(world: World, bot: StreamcordBot) -> None:
    world.llm.enqueue(Scenario(text="I was saying", finish_reason="content_filter"))
    await mention(world, "say it")
    assert await answers(world, bot, 1) == ["I was saying\n" + CONTENT_FILTER]
    [row] = await usage_rows(bot.db)
    assert row["status"] == "stopped"


async def test_an_endless_stream_stops_at_the_page_limit_upstream_closed(world: World) -> None:
    world.llm.enqueue(Scenario(tokens=["lorem ipsum dolor sit amet "], tokens_per_second=400, endless=True))
    async with running_bot(world, MAX_REPLY_PAGES="2") as bot:
        await mention(world, "go on forever")
        await world.llm.wait_for(lambda: bool(world.llm.requests), what="request")
        rec = world.llm.requests[0]
        contents = await answers(world, bot, 2)
        await world.llm.wait_for(lambda: rec.disconnected_at is not None, what="upstream closed")
        rows = await usage_rows(bot.db)
    assert len(contents) == 2 and contents[1].endswith("\n" + too_long(2))
    assert rows[0]["status"] == "stopped"


async def test_a_keepalive_only_stream_stops_at_the_deadline_upstream_closed(world: World) -> None:
    world.llm.enqueue(Scenario(keepalive_only=True, keepalive_interval=0.05))
    async with running_bot(world, LLM_DEADLINE="1", LLM_TIMEOUT="5") as bot:
        await mention(world, "anyone there?")
        contents = await answers(world, bot, 1)
        rec = world.llm.requests[0]
        await world.llm.wait_for(lambda: rec.disconnected_at is not None, what="upstream closed")
    assert contents == [too_slow(1)]
    assert rec.keepalives_sent > 5
