"""Conversations end to end: reply chains with several speakers, the context budget, threads and DMs, with
the real discord.py and openai clients against the loopback servers."""

from __future__ import annotations

from bot.client import StreamcordBot
from bot.db import Database
from bot.store.answers import AnswerOrigin, AnswersStore
from bot.streaming.render import render
from tests.conftest import World, running_bot
from tests.fakes.llm_server import Scenario
from tests.replies import assert_no_pings, bot_messages, usage_rows
from tests.test_e2e_chat import chat, wait_final

LONG = "\n\n".join(f"Paragraph {i}:" + " lorem ipsum dolor sit amet" * 12 for i in range(14))
SYSTEM = {"role": "system", "content": "You are a helpful assistant in a Discord server."}


async def answer_to(world: World, message_id: int) -> int:
    """The id of the bot's (first) reply to a message, once final."""
    await world.discord.wait_for(
        lambda: any(m.reference_id == message_id for m in world.discord.messages.values()),
        what=f"a reply to {message_id}",
    )
    [reply] = [m for m in world.discord.messages.values() if m.reference_id == message_id]
    await wait_final(world, reply.id)
    return reply.id


async def test_a_chat_chain_continued_from_page_two_and_by_another_user(
    world: World, bot: StreamcordBot
) -> None:
    world.llm.enqueue(Scenario(text=LONG))
    first = await chat(world, "Write about lorem ipsum")
    pages = render(LONG, streaming=False)
    assert len(pages) == 3
    await world.discord.wait_for(
        lambda: [m.content for m in bot_messages(world)] == pages, timeout=30, what="three final pages"
    )
    page_two = bot_messages(world)[1].id
    await world.discord.wait_for(lambda: len(bot.streams) == 0, what="first answer done")

    world.llm.enqueue(Scenario(text="Sure: it is placeholder text."))
    follow = await world.discord.post_message(world.channel_id, world.alice, "Shorter?", reply_to=page_two)
    second = await answer_to(world, follow)
    world.llm.enqueue(Scenario(text="Printers use it."))
    bobs = await world.discord.post_message(world.channel_id, world.bob, "Who uses it?", reply_to=second)
    await answer_to(world, bobs)

    assert world.llm.requests[1].body["messages"] == [
        SYSTEM,
        {"role": "user", "content": "Write about lorem ipsum", "name": "Alice"},
        {"role": "assistant", "content": LONG},
        {"role": "user", "content": "Shorter?", "name": "Alice"},
    ]
    assert world.llm.requests[2].body["messages"] == [
        SYSTEM,
        {"role": "user", "content": "Alice: Write about lorem ipsum", "name": "Alice"},
        {"role": "assistant", "content": LONG},
        {"role": "user", "content": "Alice: Shorter?", "name": "Alice"},
        {"role": "assistant", "content": "Sure: it is placeholder text."},
        {"role": "user", "content": "Bob: Who uses it?", "name": "Bob"},
    ]
    assert first == bot_messages(world)[0].id
    assert_no_pings(world)


async def seed_chain(world: World, turns: int) -> int:
    """Before the bot connects (so nothing is answered now): a reply chain of `turns` messages, alternately
    Alice's and answers the bot gave earlier, recorded in its database; returns the last message's id."""
    db = await Database.open(world.db_path)
    answers = AnswersStore(db)
    last = None
    for i in range(turns):
        if i % 2 == 0:
            last = await world.discord.post_message(
                world.channel_id, world.alice, f"question {i} " + "x" * 60, reply_to=last
            )
            continue
        answer = await world.discord.post_message(
            world.channel_id, world.discord.bot_user_id, f"answer {i} " + "y" * 60, reply_to=last
        )
        origin = AnswerOrigin(world.guild_id, world.channel_id, world.alice, "Alice", prompt_message_id=last)
        await answers.set_pages(f"seed-{i}", origin, [answer])
        last = answer
    await db.close()
    assert last is not None
    return last


def earlier_turns(messages: list[dict[str, str]]) -> list[str]:
    return [m["content"].split(" ")[1] for m in messages[1:-1]]


async def test_a_long_chain_keeps_the_newest_turns_within_the_budget(world: World) -> None:
    last = await seed_chain(world, 30)
    async with running_bot(world, HISTORY_TURNS="50", CONTEXT_TOKENS="400"):
        world.llm.enqueue(Scenario(text="Noted."))
        question = await world.discord.post_message(world.channel_id, world.alice, "and now?", reply_to=last)
        reply = await answer_to(world, question)

    messages = world.llm.requests[0].body["messages"]
    assert messages[0] == SYSTEM and messages[-1]["content"] == "and now?"
    kept = earlier_turns(messages)
    assert 0 < len(kept) < 30
    assert kept == [str(i) for i in range(30 - len(kept), 30)], "the newest turns, oldest dropped"
    left_out = 30 - len(kept)
    assert world.discord.messages[reply].content == (
        f"Noted.\nℹ️ {left_out} earlier messages left out to fit the context"
    )


async def test_a_full_context_is_retried_once_with_half_the_history(world: World) -> None:
    world.llm.context_limit = 150
    last = await seed_chain(world, 30)
    async with running_bot(world, HISTORY_TURNS="50", CONTEXT_TOKENS="100000") as bot:
        world.llm.enqueue(Scenario(text="Still here."))
        question = await world.discord.post_message(world.channel_id, world.alice, "and now?", reply_to=last)
        reply = await answer_to(world, question)
        await world.discord.wait_for(lambda: len(bot.streams) == 0, what="usage recorded")
        [row] = await usage_rows(bot.db)

    refused, answered = world.llm.requests
    assert (refused.status, answered.status) == (400, 200)
    assert len(earlier_turns(refused.body["messages"])) == 30
    assert earlier_turns(answered.body["messages"]) == [str(i) for i in range(15, 30)]
    assert world.discord.messages[reply].content == (
        "Still here.\nℹ️ the conversation was too long for the model: retried with 15 earlier messages"
    )
    assert row["status"] == "completed"
