"""Answers beyond what the bot runs at once wait in order and see their place in the queue, updated as it
moves (a hard ceiling of one makes the queue deterministic; the adaptive part is tested in test_intake)."""

from __future__ import annotations

from fakes.llm_server import Scenario
from tests.e2e import STOP, World, chat, running_bot, wait_final, wait_idle


def shows(world: World, message_id: int, content: str) -> bool:
    return world.discord.messages[message_id].content == content


async def test_queued_answers_show_their_place_and_move_up(world: World) -> None:
    world.llm.enqueue(Scenario(text="First answer, at length.", hang_after=1))
    world.llm.enqueue(Scenario(text="Second answer.", hang_after=1))
    world.llm.enqueue(Scenario(text="Third."))
    async with running_bot(world, MAX_CONCURRENT_STREAMS="1", MAX_STREAMS_PER_USER="5") as bot:
        first = await chat(world, "one")
        second = await chat(world, "two")
        third = await chat(world, "three")
        # Acknowledged at once with their place, before the model is asked.
        assert world.discord.messages[second].versions[0].content == "⏳ queued: next ▌"
        assert world.discord.messages[third].versions[0].content == "⏳ queued: 1 ahead ▌"
        assert len(world.llm.requests) == 1
        await world.discord.wait_for(
            lambda: world.discord.bot_user_id in world.discord.messages[first].reactions.get(STOP, set()),
            what="stop button on the running answer",
        )
        await world.discord.add_reaction(world.channel_id, first, world.alice, STOP)
        # The second answer runs (its queue line gone), the third moves up.
        await world.discord.wait_for(lambda: shows(world, second, "Second ▌"), what="second answer streaming")
        await world.discord.wait_for(lambda: shows(world, third, "⏳ queued: next ▌"), what="third moved up")
        await world.discord.add_reaction(world.channel_id, second, world.alice, STOP)
        await wait_final(world, third, lambda content: content == "Third.")
        await wait_idle(world, bot)
    assert [r.body["messages"][-1]["content"] for r in world.llm.requests] == ["one", "two", "three"]
