"""/chat and mentions end to end: real discord.py and openai against the loopback servers."""

from __future__ import annotations

import pytest

from bot.client import StreamcordBot
from bot.streaming import display
from bot.streaming.render import fences_balanced, render
from cogs.chat import MESSAGE_FAILED
from fakes.llm_server import Scenario, tokenize
from tests.e2e import (
    LONG,
    STORY,
    World,
    assert_grew_monotonically,
    assert_no_pings,
    bot_messages,
    chat,
    mention,
    running_bot,
    usage_rows,
    wait_final,
    wait_idle,
    without_marker,
)


async def test_chat_streams_into_one_message_with_paced_edits(world: World, bot: StreamcordBot) -> None:
    world.llm.enqueue(Scenario(text=STORY, tokens_per_second=40))
    message_id = await chat(world, "Tell me a story")
    await wait_final(world, message_id)
    await world.discord.wait_for(
        lambda: not world.discord.messages[message_id].reactions.get("🛑"), what="stop button removed"
    )
    await wait_idle(world, bot)

    message = world.discord.messages[message_id]
    assert message.content == STORY
    assert len(message.versions) >= 3, "the reply should grow in place"
    assert_grew_monotonically(message, STORY)
    assert world.discord.count_429() == 0
    assert_no_pings(world)
    assert [m.id for m in bot_messages(world)] == [message_id]
    # First text went out with the interaction response itself.
    assert message.versions[0].content.startswith("word0")

    request = world.llm.requests[0]
    assert request.body["messages"][-1] == {"role": "user", "content": "Tell me a story", "name": "Alice"}
    assert request.body["stream_options"] == {"include_usage": True}
    [row] = await usage_rows(bot.db)
    assert row["status"] == "completed"
    assert row["estimated"] == 0
    assert row["completion_tokens"] == request.tokens_sent
    assert row["user_id"] == world.alice and row["channel_id"] == world.channel_id


async def test_long_reply_splits_with_balanced_code_fences(world: World, bot: StreamcordBot) -> None:
    code = "\n".join(f"    print('line {i}: ' + 'x' * 40)" for i in range(90))
    text = "Here is the script:\n\n```python\n" + code + "\n```\n\nAnd the explanation " + "ok " * 300
    world.llm.enqueue(Scenario(text=text))
    first = await chat(world, "Write a long script")
    expected = render(text, streaming=False)
    assert len(expected) >= 3
    await world.discord.wait_for(
        lambda: [m.content for m in bot_messages(world)] == expected, timeout=30, what="every page final"
    )
    pages = bot_messages(world)
    assert pages[0].id == first
    assert all(len(v.content) <= 2000 for m in pages for v in m.versions)
    assert all(fences_balanced(m.content) for m in pages)
    assert world.discord.count_429() == 0
    assert_no_pings(world)


async def test_model_output_pings_nobody(world: World, bot: StreamcordBot) -> None:
    text = f"@everyone look! <@&{world.guild_id}> and <@{world.bob}> @here"
    world.llm.enqueue(Scenario(text=text))
    message_id = await chat(world, "ping people")
    await wait_final(world, message_id)
    message = world.discord.messages[message_id]
    assert message.content == text
    assert not message.mention_everyone and not message.mentions and not message.mention_roles
    assert_no_pings(world)


@pytest.mark.parametrize(
    ("scenario", "error"),
    [
        (Scenario(status=401), "rejected the bot's API key"),
        (Scenario(status=429), "rate limiting"),
        (Scenario(status=503), "HTTP 503"),
        (Scenario(context_length_exceeded=True), "too long for this model"),
        (Scenario(text=STORY, drop_after=5), "dropped the connection"),
        (Scenario(text=STORY, end_after=5), "dropped the connection"),
        (
            Scenario(text=STORY, error_after=5, error_message="GPU fell over"),
            "reported an error: GPU fell over",
        ),
    ],
    ids=["auth", "rate-limited", "server-error", "context-length", "dropped", "ended-early", "error-event"],
)
async def test_upstream_failure_ends_in_a_clear_message(
    world: World, bot: StreamcordBot, scenario: Scenario, error: str
) -> None:
    world.llm.enqueue(scenario)
    message_id = await chat(world, "hello")
    await wait_final(world, message_id, lambda content: "⚠️" in content)
    content = world.discord.messages[message_id].content
    assert error in content
    partial = world.llm.requests[0].text_sent
    assert content.startswith(partial)
    await wait_idle(world, bot)
    [row] = await usage_rows(bot.db)
    assert row["status"] == "error"

    # The bot keeps serving.
    world.llm.enqueue(Scenario(text="Back again."))
    second = await chat(world, "hello again")
    await wait_final(world, second, lambda content: content == "Back again.")


async def test_stalled_stream_times_out_with_partial_text_kept(world: World) -> None:
    world.llm.enqueue(Scenario(text=STORY, hang_after=4))
    async with running_bot(world, LLM_TIMEOUT="1"):
        message_id = await chat(world, "hello")
        await wait_final(world, message_id, lambda content: "⚠️" in content)
    content = world.discord.messages[message_id].content
    assert "took too long" in content
    assert content.startswith(world.llm.requests[0].text_sent)


async def test_deleted_reply_cancels_generation(world: World, bot: StreamcordBot) -> None:
    world.llm.enqueue(Scenario(text=STORY * 5, tokens_per_second=20))
    message_id = await chat(world, "go on")
    message = world.discord.messages[message_id]
    await world.discord.wait_for(lambda: len(message.versions) >= 2, what="streaming started")
    await world.discord.delete_message(world.channel_id, message_id)
    request = world.llm.requests[0]
    await world.llm.wait_for(lambda: request.disconnected_at is not None, what="upstream closed")
    assert request.finished_at is None
    assert request.tokens_after_disconnect == 0
    await wait_idle(world, bot)
    [row] = await usage_rows(bot.db)
    assert row["status"] == "stopped"
    assert row["estimated"] == 1
    # At least what was shown; at most what the server wrote (a token in flight may never be read).
    shown = tokenize(without_marker(message.versions[-1].content))
    assert len(shown) <= row["completion_tokens"] <= request.tokens_sent
    assert all(v.at <= message.deleted_at for v in message.versions)


async def test_mention_gets_a_streamed_reply_and_replies_continue_the_conversation(
    world: World, bot: StreamcordBot
) -> None:
    world.llm.enqueue(Scenario(text="Paris is the capital of France."))
    question = await mention(world, "what is the capital of France?")
    await world.discord.wait_for(lambda: len(bot_messages(world)) == 1, what="a reply")
    [reply] = bot_messages(world)
    await wait_final(world, reply.id)
    assert reply.content == "Paris is the capital of France."
    assert reply.reference_id == question
    assert world.llm.requests[0].body["messages"][-1] == {
        "role": "user",
        "content": "what is the capital of France?",
        "name": "Alice",
    }

    await wait_idle(world, bot)  # the answer's pages are recorded: the reply below leads back to it
    world.llm.enqueue(Scenario(text="About two million people."))
    await world.discord.post_message(world.channel_id, world.alice, "And its population?", reply_to=reply.id)
    await world.discord.wait_for(lambda: len(bot_messages(world)) == 2, what="a second reply")
    await wait_final(world, bot_messages(world)[1].id)
    messages = world.llm.requests[1].body["messages"]
    assert messages[-3:] == [
        {"role": "user", "content": "what is the capital of France?", "name": "Alice"},
        {"role": "assistant", "content": "Paris is the capital of France."},
        {"role": "user", "content": "And its population?", "name": "Alice"},
    ]
    assert_no_pings(world)


@pytest.mark.parametrize("mention", [False, True], ids=["chat", "mention"])
async def test_a_page_break_goes_out_as_one_step_within_both_buckets(
    world: World, bot: StreamcordBot, mention: bool
) -> None:
    text = " ".join(["word"] * 500)  # two pages
    world.llm.enqueue(Scenario(text=text, tokens_per_second=100))  # several paced edits before the break
    if mention:
        await world.discord.post_message(world.channel_id, world.alice, f"<@{world.discord.bot_user_id}> go")
    else:
        await chat(world, "talk")
    final = render(text, streaming=False)
    await world.discord.wait_for(
        lambda: [m.content for m in bot_messages(world)] == final, timeout=30, what="both pages final"
    )
    first, second = bot_messages(world)
    # The finishing edit of page one and the creation of page two are neighbours: nothing went between.
    writes = sorted([(v.at, 1, v.content) for v in first.versions] + [(second.versions[0].at, 2, "")])
    pages = [page for _, page, _ in writes]
    created = pages.index(2)
    neighbours = {writes[created - 1][2], writes[created + 1][2] if created + 1 < len(writes) else None}
    assert final[0] in neighbours
    assert world.discord.count_429() == 0  # neither the create nor the edit bucket was exceeded


async def test_a_mention_reply_longer_than_a_page_continues_in_a_plain_second_message(
    world: World, bot: StreamcordBot
) -> None:
    text = " ".join(["word"] * 500)  # 2,499 characters: two pages
    world.llm.enqueue(Scenario(text=text))
    question = await mention(world, "talk")
    await world.discord.wait_for(
        lambda: len(bot_messages(world)) == 2 and not bot_messages(world)[1].content.endswith("▌"),
        what="both pages final",
    )
    first, second = bot_messages(world)
    assert (first.reference_id, second.reference_id) == (question, None)  # only the first page replies
    assert (first.content + " " + second.content).split() == text.split()


async def test_slow_model_gets_a_placeholder_within_the_interaction_deadline(
    world: World, bot: StreamcordBot
) -> None:
    world.llm.enqueue(Scenario(text="Finally, an answer.", ttft=2.6))
    message_id = await chat(world, "think hard")
    message = world.discord.messages[message_id]
    assert message.versions[0].content == "▌"
    await wait_final(world, message_id)
    assert message.content == "Finally, an answer."
    [interaction] = world.discord.interactions.values()
    assert interaction.responded_at is not None
    assert interaction.responded_at - interaction.created_at < world.discord.ack_deadline


async def test_reply_outliving_its_interaction_token_continues_in_channel_messages(
    world: World, bot: StreamcordBot
) -> None:
    world.discord.token_ttl = 1.0
    text = " ".join(f"t{i}" for i in range(100))
    world.llm.enqueue(Scenario(text=text, tokens_per_second=40))
    message_id = await chat(world, "a long one")
    await wait_final(world, message_id)
    assert world.discord.messages[message_id].content == text
    edits = [r for r in world.discord.requests if r.method == "PATCH" and str(message_id) in r.path]
    assert any(r.path.startswith("/channels/") and r.status == 200 for r in edits)
    assert sum(r.status == 401 for r in world.discord.requests) <= 1
    assert world.discord.count_429() == 0


async def test_a_passing_discord_outage_does_not_lose_the_final_text(
    world: World, bot: StreamcordBot
) -> None:
    world.llm.enqueue(Scenario(text=STORY, tokens_per_second=40))
    message_id = await chat(world, "Tell me a story")
    message = world.discord.messages[message_id]
    await world.discord.wait_for(lambda: len(message.versions) >= 2, what="streaming started")
    world.discord.fail_requests("PATCH", "/messages/@original", 503, count=2)
    await wait_final(world, message_id)
    await wait_idle(world, bot)
    assert message.content == STORY
    assert sum(r.status == 503 for r in world.discord.requests) == 2
    assert await bot.db.fetchall("SELECT * FROM inflight") == []


async def test_an_unexpected_error_on_a_mention_is_answered_and_the_bot_goes_on(
    world: World, bot: StreamcordBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    answer = bot.admission.check

    async def fails_once(*args: object, **kwargs: object) -> object:
        monkeypatch.setattr(bot.admission, "check", answer)
        raise RuntimeError("a bug")

    monkeypatch.setattr(bot.admission, "check", fails_once)
    asked = await world.discord.post_message(
        world.channel_id, world.alice, f"<@{world.discord.bot_user_id}> hello"
    )
    await world.discord.wait_for(lambda: len(bot_messages(world)) == 1, what="a reply")
    [reply] = bot_messages(world)
    assert reply.content == MESSAGE_FAILED and reply.reference_id == asked
    world.llm.enqueue(Scenario(text="Hello again."))
    await world.discord.post_message(world.channel_id, world.alice, f"<@{world.discord.bot_user_id}> hello")
    await world.discord.wait_for(
        lambda: len(bot_messages(world)) == 2 and not bot.streams, timeout=20, what="the next answer"
    )
    assert bot_messages(world)[1].content == "Hello again."


async def test_a_503_burst_that_exhausts_the_retries_mid_stream_leaves_no_mark(
    world: World, bot: StreamcordBot
) -> None:
    """A burst longer than a streaming version's retries, reaching the final version: the complete answer
    still shows and is final (not left for recovery to label interrupted), and a later failure is retried
    too. A mention's reply, since discord.py raises a channel edit's 503 at once (it retries webhook 5xx
    itself)."""
    text = LONG[:800]
    world.llm.enqueue(Scenario(text=text, tokens_per_second=40))
    await world.discord.post_message(world.channel_id, world.alice, f"<@{world.discord.bot_user_id}> count")
    await world.discord.wait_for(lambda: len(bot_messages(world)) == 1, what="a reply")
    message = bot_messages(world)[0]
    await world.discord.wait_for(lambda: len(message.versions) >= 2, what="streaming started")

    def failures() -> int:
        return sum(r.status == 503 for r in world.discord.requests)

    edits = f"/messages/{message.id}"
    world.discord.fail_requests("PATCH", edits, 503, count=display.MAX_RETRIES + 1)
    await world.discord.wait_for(
        lambda: failures() == display.MAX_RETRIES + 1, timeout=20, what="retries spent"
    )
    world.discord.fail_requests("PATCH", edits, 503, count=2)
    await wait_final(world, message.id)
    await world.discord.wait_for(lambda: len(bot.streams) == 0, what="answer finished")
    assert message.content == text
    assert failures() == display.MAX_RETRIES + 3
    assert await bot.db.fetchall("SELECT * FROM inflight") == []
    [row] = await usage_rows(bot.db)
    assert row["status"] == "completed"
