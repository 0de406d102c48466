"""Conversations end to end: reply chains with several speakers, the context budget, threads and DMs, with
the real discord.py and openai clients against the loopback servers."""

from __future__ import annotations

import discord

from bot.client import StreamcordBot
from bot.db import DatabaseLocation, open_database
from bot.store.answers import AnswerOrigin, AnswersStore
from bot.streaming.render import render
from fakes.llm_server import Scenario
from tests.e2e import (
    World,
    assert_no_pings,
    bot_messages,
    chat,
    command,
    first_reply,
    mention,
    running_bot,
    usage_rows,
    wait_final,
    wait_idle,
)

LONG = "\n\n".join(f"Paragraph {i}:" + " lorem ipsum dolor sit amet" * 12 for i in range(14))
SYSTEM = {"role": "system", "content": "You are a helpful assistant in a Discord server."}


async def answer_to(world: World, message_id: int) -> int:
    """The id of the bot's (first) reply to a message, once final."""
    reply = await first_reply(world, message_id)
    await wait_final(world, reply)
    return reply


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
    await wait_idle(world, bot)

    world.llm.enqueue(Scenario(text="Sure: it is placeholder text."))
    follow = await world.discord.post_message(world.channel_id, world.alice, "Shorter?", reply_to=page_two)
    second = await answer_to(world, follow)
    await wait_idle(world, bot)  # its page is recorded a moment after Discord shows it
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


async def test_edits_seen_on_the_gateway_reach_the_next_answer(world: World, bot: StreamcordBot) -> None:
    edits: list[int] = []  # the message edits discord.py parsed and dispatched

    async def on_raw_message_edit(payload: discord.RawMessageUpdateEvent) -> None:
        edits.append(payload.message_id)

    bot.add_listener(on_raw_message_edit)
    world.llm.enqueue(Scenario(text="Paris."))
    question = await mention(world, "Capital of France?")
    first = await answer_to(world, question)
    await wait_idle(world, bot)
    world.llm.enqueue(Scenario(text="About two million."))
    follow = await world.discord.post_message(world.channel_id, world.alice, "Population?", reply_to=first)
    second = await answer_to(world, follow)
    await wait_idle(world, bot)  # the chain behind it was read, and is remembered

    # The bot corrects its first answer, then Alice her question: both echoes arrive on the gateway, in order.
    await bot.get_partial_messageable(world.channel_id).get_partial_message(first).edit(content="Rome.")
    await world.discord.edit_message(
        world.channel_id, question, f"<@{world.discord.bot_user_id}> Capital of Italy?"
    )
    await world.discord.wait_for(lambda: question in edits, what="Alice's edit seen")
    world.llm.enqueue(Scenario(text="Noted."))
    last = await world.discord.post_message(world.channel_id, world.alice, "Thanks", reply_to=second)
    await answer_to(world, last)

    assert world.llm.requests[2].body["messages"][1:] == [
        {"role": "user", "content": "Capital of Italy?", "name": "Alice"},
        {"role": "assistant", "content": "Rome."},
        {"role": "user", "content": "Population?", "name": "Alice"},
        {"role": "assistant", "content": "About two million."},
        {"role": "user", "content": "Thanks", "name": "Alice"},
    ]
    # The echoes of the bot's own edits (every streamed version, and the correction) built no Message.
    assert edits == [question]


async def seed_chain(world: World, turns: int) -> int:
    """Before the bot connects (so nothing is answered now): a reply chain of `turns` messages, alternately
    Alice's and answers the bot gave earlier, recorded in its database; returns the last message's id."""
    db = await open_database(DatabaseLocation(path=world.db_path))
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
        await wait_idle(world, bot)
        [row] = await usage_rows(bot.db)

    refused, answered = world.llm.requests
    assert (refused.status, answered.status) == (400, 200)
    assert len(earlier_turns(refused.body["messages"])) == 30
    assert earlier_turns(answered.body["messages"]) == [str(i) for i in range(15, 30)]
    assert world.discord.messages[reply].content == (
        "Still here.\nℹ️ the conversation was too long for the model: retried with 15 earlier messages"
    )
    assert row["status"] == "completed"


async def chat_with(world: World, options: dict[str, object]) -> int:
    """Alice's /chat with options; the id of the interaction's response message."""
    return (await command(world, "chat", options, user=world.alice)).id


async def open_thread(world: World, prompt: str) -> tuple[int, int]:
    """/chat thread:true; (the thread's id, the answer's first message there) once the answer is final."""
    starter = await chat_with(world, {"prompt": prompt, "thread": True})
    await world.discord.wait_for(lambda: bot_messages(world, starter), what="the answer in the thread")
    [answer] = bot_messages(world, starter)
    await wait_final(world, answer.id)
    return starter, answer.id


async def test_chat_in_a_thread_then_plain_messages_from_two_users_continue_it(world: World) -> None:
    world.llm.enqueue(Scenario(text=" ".join(f"w{i}" for i in range(60)), tokens_per_second=40))
    async with running_bot(world, MESSAGE_CONTENT_INTENT="true") as bot:
        thread, answer = await open_thread(world, "Plan a picnic\nfor six people")
        assert world.discord.messages[thread].content == "🧵 Plan a picnic for six people"
        assert len(world.discord.messages[answer].versions) >= 3, "streamed with paced edits"
        assert world.discord.count_429() == 0
        await wait_idle(world, bot)

        world.llm.enqueue(Scenario(text="Sandwiches."))
        alices = await world.discord.post_message(thread, world.alice, "What food?")
        await answer_to(world, alices)
        await wait_idle(world, bot)  # its pages recorded: a reply a few ms after the final edit may miss them
        world.llm.enqueue(Scenario(text="Lemonade."))
        bobs = await world.discord.post_message(thread, world.bob, "And drinks?")
        await answer_to(world, bobs)
        await wait_idle(world, bot)
        rows = await usage_rows(bot.db)

    assert world.llm.requests[2].body["messages"][1:] == [
        {"role": "user", "content": "Alice: Plan a picnic\nfor six people", "name": "Alice"},
        {"role": "assistant", "content": " ".join(f"w{i}" for i in range(60))},
        {"role": "user", "content": "Alice: What food?", "name": "Alice"},
        {"role": "assistant", "content": "Sandwiches."},
        {"role": "user", "content": "Bob: And drinks?", "name": "Bob"},
    ]
    assert {r["channel_id"] for r in rows} == {thread}
    assert_no_pings(world)


async def test_without_the_intent_a_thread_explains_once_and_mentions_still_work(
    world: World, bot: StreamcordBot
) -> None:
    world.llm.enqueue(Scenario(text="Here."))
    thread, _ = await open_thread(world, "A question")
    first = await world.discord.post_message(thread, world.alice, "plain one")
    await world.discord.post_message(thread, world.bob, "plain two")
    world.llm.enqueue(Scenario(text="Yes, with a mention."))
    await answer_to(world, await mention(world, "can you hear me?", user=world.bob, channel=thread))

    def explanations() -> list[int | None]:
        return [m.reference_id for m in bot_messages(world, thread) if "Message Content intent" in m.content]

    # One-offs take turns with the streams' edits, so the explanation may land after the answer.
    await world.discord.wait_for(lambda: explanations() == [first], what="one explanation")
    assert len(world.llm.requests) == 2


async def test_direct_messages_hold_a_conversation_within_the_users_quota(world: World) -> None:
    dm = world.discord.add_dm_channel(world.alice)
    async with running_bot(world, ALLOW_DMS="true", DAILY_TOKEN_QUOTA="303") as bot:
        said = []
        for i, text in enumerate(["One.", "Two.", "Three."]):
            world.llm.enqueue(Scenario(text=text, prompt_tokens=100))
            said.append(await world.discord.post_message(dm, world.alice, f"count {i + 1}"))
            await answer_to(world, said[-1])
            await wait_idle(world, bot)
        refused = await world.discord.post_message(dm, world.alice, "count 4")
        reply = await answer_to(world, refused)
        rows = await usage_rows(bot.db)

    assert world.llm.requests[2].body["messages"][1:] == [
        {"role": "user", "content": "count 1", "name": "Alice"},
        {"role": "assistant", "content": "One."},
        {"role": "user", "content": "count 2", "name": "Alice"},
        {"role": "assistant", "content": "Two."},
        {"role": "user", "content": "count 3", "name": "Alice"},
    ]
    assert len(world.llm.requests) == 3
    assert "tokens for today in direct messages" in world.discord.messages[reply].content
    assert [(r["guild_id"], r["channel_id"]) for r in rows] == [(None, dm)] * 3


async def test_direct_messages_are_ignored_unless_allowed(world: World, bot: StreamcordBot) -> None:
    dm = world.discord.add_dm_channel(world.alice)
    await world.discord.post_message(dm, world.alice, "hello?")
    world.llm.enqueue(Scenario(text="In the server."))
    await answer_to(
        world,
        await mention(world, "hi"),
    )
    assert bot_messages(world, dm) == [] and len(world.llm.requests) == 1


async def test_chat_model_is_for_listed_users_and_autocompletes_allowed_models(
    world: World, bot: StreamcordBot
) -> None:
    refused = await chat_with(world, {"prompt": "hi", "model": "fake-model-mini"})
    assert "user_models" in world.discord.messages[refused].content
    assert world.discord.messages[refused].ephemeral and world.llm.requests == []

    await bot.settings.set(world.guild_id, "guild", world.guild_id, "user_models", f"<@{world.alice}>", 1)
    completion = await world.discord.run_autocomplete(
        world.guild_id, world.channel_id, world.alice, "chat", {"prompt": "hi", "model": "mini"}, "model"
    )
    await world.discord.wait_for(lambda: completion.choices is not None, what="autocomplete")
    assert completion.choices == [{"name": "fake-model-mini", "value": "fake-model-mini"}]

    world.llm.enqueue(Scenario(text="Small but quick."))
    answer = await chat_with(world, {"prompt": "hi", "model": "fake-model-mini"})
    await wait_final(world, answer)
    assert world.llm.requests[0].body["model"] == "fake-model-mini"
    unknown = await chat_with(world, {"prompt": "hi", "model": "gpt-nope"})
    assert "no model `gpt-nope`" in world.discord.messages[unknown].content


async def test_a_private_answer_is_ephemeral_and_still_streams_by_editing(
    world: World, bot: StreamcordBot
) -> None:
    text = " ".join(f"p{i}" for i in range(60))
    world.llm.enqueue(Scenario(text=text, tokens_per_second=40))
    answer = await chat_with(world, {"prompt": "secret", "private": True})
    await wait_final(world, answer)
    message = world.discord.messages[answer]
    assert message.ephemeral and message.content == text
    assert len(message.versions) >= 3, "streamed by editing"
    assert bot_messages(world) == [] and not message.reactions.get("🛑")
    await wait_idle(world, bot)
    assert await bot.answers.by_message(answer) is None, "nobody can reply to an ephemeral answer"


async def test_a_thread_archived_mid_answer_ends_it_with_the_model_closed_and_usage_recorded(
    world: World, bot: StreamcordBot
) -> None:
    world.llm.enqueue(Scenario(text=" ".join(f"z{i}" for i in range(400)), tokens_per_second=20))
    thread = await chat_with(world, {"prompt": "a long story", "thread": True})
    await world.discord.wait_for(lambda: bot_messages(world, thread), what="the answer in the thread")
    [answer] = bot_messages(world, thread)
    await world.discord.wait_for(lambda: len(answer.versions) >= 2, what="streaming started")
    world.discord.archive_thread(thread)
    request = world.llm.requests[0]
    await world.llm.wait_for(lambda: request.disconnected_at is not None, what="upstream closed")
    await wait_idle(world, bot)
    [row] = await usage_rows(bot.db)
    # Discord refuses the reply for good: the usage says so (issue 12), with the code.
    assert row["status"] == "error" and "50083" in row["error"] and row["completion_tokens"] > 0
    assert request.finished_at is None and request.tokens_after_disconnect == 0


async def test_a_mention_without_text_gets_a_short_answer_not_a_model_call(
    world: World, bot: StreamcordBot
) -> None:
    empty = await mention(world, " ")
    reply = await answer_to(world, empty)
    assert world.discord.messages[reply].content == "Ask me something: your message had no text I can read."
    assert world.llm.requests == []


async def test_a_long_answer_to_a_mention_continues_on_new_pages_that_lead_back_to_it(
    world: World, bot: StreamcordBot
) -> None:
    world.llm.enqueue(Scenario(text=LONG))
    question = await mention(world, "write a lot")
    pages = render(LONG, streaming=False)
    await world.discord.wait_for(
        lambda: [m.content for m in bot_messages(world)] == pages, timeout=30, what="three final pages"
    )
    first, last = bot_messages(world)[0], bot_messages(world)[-1]
    assert first.reference_id == question and last.reference_id is None
    await wait_idle(world, bot)

    world.llm.enqueue(Scenario(text="Yes."))
    follow = await world.discord.post_message(world.channel_id, world.alice, "Done?", reply_to=last.id)
    await answer_to(world, follow)
    assert world.llm.requests[1].body["messages"][1:] == [
        {"role": "user", "content": "write a lot", "name": "Alice"},
        {"role": "assistant", "content": LONG},
        {"role": "user", "content": "Done?", "name": "Alice"},
    ]
