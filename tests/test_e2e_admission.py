"""Who may start an answer: one member can't flood the bot, a quota holds against parallel requests, and
nothing reaches the model once shutdown began."""

from __future__ import annotations

from bot.client import StreamcordBot
from bot.status import INTERRUPTED_BY_RESTART
from fakes.llm_server import Scenario
from tests.e2e import LONG, World, chat, running_bot, slow, usage_rows, wait_final, wait_idle


async def refused(world: World, user: int) -> str:
    """Run /chat as ``user`` and return the ephemeral refusal it got."""
    interaction = await world.discord.run_slash_command(
        world.guild_id, world.channel_id, user, "chat", {"prompt": "one more"}
    )
    await world.discord.wait_for(lambda: interaction.message_id is not None, what="answer to /chat")
    message = world.discord.messages[interaction.message_id]  # type: ignore[index]
    assert message.ephemeral, message.content
    return message.content


async def test_one_member_may_have_two_answers_in_progress(world: World, bot: StreamcordBot) -> None:
    for _ in range(3):
        world.llm.enqueue(slow())
    first = await chat(world, "one")
    await chat(world, "two")
    assert await refused(world, world.alice) == (
        "You have 2 answers still being written. Wait for one to finish, or stop it with 🛑."
    )
    assert len(world.llm.requests) == 2
    await chat(world, "bob's", user=world.bob)  # others are not held back
    await world.llm.wait_for(lambda: len(world.llm.requests) == 3, what="bob's answer asked")
    await world.discord.add_reaction(world.channel_id, first, world.alice, "🛑")
    await wait_final(world, first)
    world.llm.enqueue(Scenario(text="Third."))
    await world.discord.wait_for(lambda: len(bot.streams) == 2, what="the stopped answer over")
    await wait_final(world, await chat(world, "three"), lambda content: content == "Third.")


async def test_running_answers_count_against_the_daily_quota(world: World) -> None:
    for _ in range(3):
        world.llm.enqueue(Scenario(text=LONG, tokens_per_second=25))
    env = {"DAILY_TOKEN_QUOTA": "100", "MAX_TOKENS": "60", "MAX_STREAMS_PER_USER": "5"}
    async with running_bot(world, **env) as bot:
        await chat(world, "one")  # reserves 60 of 100
        await chat(world, "two")  # 60 reserved < 100: reserves 60 more
        assert await refused(world, world.alice) == (
            "Your answers in progress may use the rest of today's token quota. Ask again when they finish."
        )
        assert len(world.llm.requests) == 2
        await bot.streams.shutdown(5)


async def test_an_answer_admitted_as_shutdown_begins_never_reaches_the_model(
    world: World, bot: StreamcordBot
) -> None:
    """A mention is admitted and its answer, placeholder showing, waits on Discord for its history while
    shutdown begins: it ends interrupted without asking the model, and its reservation is released. A mention
    admitted after that is refused by the closed StreamManager."""
    earlier = await world.discord.post_message(world.channel_id, world.alice, "What is 2 + 2?")
    release = world.discord.hold_requests("GET", f"/messages/{earlier}")
    mention = await world.discord.post_message(
        world.channel_id, world.alice, f"<@{world.discord.bot_user_id}> and times 3?", reply_to=earlier
    )
    await world.discord.wait_for(
        lambda: any(r.method == "GET" and str(earlier) in r.path for r in world.discord.requests),
        what="history fetch under way",
    )
    await world.discord.wait_for(
        lambda: any(m.reference_id == mention for m in world.discord.channel_messages(world.channel_id)),
        what="the placeholder",
    )
    await bot.streams.shutdown(5)  # what close() does first
    release.set()
    [answer] = [m for m in world.discord.channel_messages(world.channel_id) if m.reference_id == mention]
    await wait_final(world, answer.id, lambda content: content == INTERRUPTED_BY_RESTART)
    late = await world.discord.post_message(
        world.channel_id, world.alice, f"<@{world.discord.bot_user_id}> hi"
    )
    await world.discord.wait_for(
        lambda: any(m.reference_id == late for m in world.discord.channel_messages(world.channel_id)),
        what="an answer to the late mention",
    )
    [refusal] = [m for m in world.discord.channel_messages(world.channel_id) if m.reference_id == late]
    assert refusal.content == "I'm restarting. Ask again in a moment."
    await wait_idle(world, bot)
    assert world.llm.requests == []
    assert bot.admission.reservations.running((world.guild_id, world.alice)) == 0
    [row] = await usage_rows(bot.db)
    assert row["status"] == "interrupted"
