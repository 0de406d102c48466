"""Attachments on a question end to end, and reasoning attached as a file: real clients, loopback servers."""

from __future__ import annotations

import base64

import pytest

from bot.attachments import TEXT_MAX_BYTES
from bot.client import StreamcordBot
from bot.status import IMAGES_REFUSED
from bot.streaming.render import MARKER
from fakes.llm_server import Scenario
from tests.e2e import World, answers, bot_messages, mention

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(40))
LOG = "ERROR disk full\nWARN retrying\n"


def user_turn(world: World, n: int = 0) -> object:
    return world.llm.requests[n].body["messages"][-1]["content"]


async def test_text_and_image_go_to_the_model_the_rest_is_named_and_skipped(
    world: World, bot: StreamcordBot
) -> None:
    world.llm.enqueue(Scenario(text="The disk is full."))
    await mention(
        world,
        "what failed?",
        attachments=[
            world.discord.upload("app.log", LOG.encode(), "text/plain; charset=utf-8"),
            world.discord.upload("screen.png", PNG, "image/png"),
            world.discord.upload("big.log", b"x" * (TEXT_MAX_BYTES + 1), "text/plain"),
            world.discord.upload("logs.zip", b"PK\x03\x04", "application/zip"),
            # Discord reported a small size, but the body is larger: reading stops at the limit.
            world.discord.upload("liar.txt", b"y" * (TEXT_MAX_BYTES * 3), "text/plain", size=10),
        ],
    )
    [content] = await answers(world, bot, 1)
    assert user_turn(world) == [
        {"type": "text", "text": f"what failed?\n\nAttached file `app.log`:\n```\n{LOG}\n```"},
        {
            "type": "image_url",
            "image_url": {"url": "data:image/png;base64," + base64.b64encode(PNG).decode()},
        },
    ]
    assert content == (
        "The disk is full.\n📎 skipped big.log (over 100 kB), logs.zip (not a text file or an image),"
        " liar.txt (over 100 kB)"
    )


async def test_a_model_refusing_images_is_asked_once_more_without_them(
    world: World, bot: StreamcordBot
) -> None:
    world.llm.default = Scenario(text="I can only read text.", reject_images=True)
    await mention(world, "what is this?", attachments=[world.discord.upload("a.png", PNG, "image/png")])
    [content] = await answers(world, bot, 1)
    assert len(world.llm.requests) == 2
    assert [part["type"] for part in user_turn(world, 0)] == ["text", "image_url"]  # type: ignore[attr-defined]
    assert user_turn(world, 1) == "what is this?"
    assert content == f"I can only read text.\n{IMAGES_REFUSED}"


async def test_images_off_and_chat_file_option(world: World, bot: StreamcordBot) -> None:
    await bot.settings.set(world.guild_id, "channel", world.channel_id, "vision", "off", world.admin)
    world.llm.enqueue(Scenario(text="Read it."))
    interaction = await world.discord.run_slash_command(
        world.guild_id,
        world.channel_id,
        world.alice,
        "chat",
        {
            "prompt": "summarise",
            "file": world.discord.upload("notes.md", b"# Notes\nall good", "text/markdown"),
        },
    )
    await world.discord.wait_for(lambda: len(bot.streams) == 0 and interaction.message_id is not None)
    assert user_turn(world) == "summarise\n\nAttached file `notes.md`:\n```\n# Notes\nall good\n```"

    world.llm.enqueue(Scenario(text="No image then."))
    await mention(world, "and this?", attachments=[world.discord.upload("a.png", PNG, "image/png")])
    await world.discord.wait_for(lambda: len(world.llm.requests) == 2 and len(bot.streams) == 0)
    assert user_turn(world, 1) == "and this?"
    assert bot_messages(world)[-1].content == "No image then.\n📎 skipped a.png (images are off here)"


async def test_file_mode_attaches_the_reasoning(world: World, bot: StreamcordBot) -> None:
    await bot.settings.set(world.guild_id, "channel", world.channel_id, "reasoning", "file", world.admin)
    world.llm.enqueue(Scenario(text="Four.", reasoning=["Two and", " two."]))
    await mention(world, "2+2?")
    [content] = await answers(world, bot, 1)
    [reply] = bot_messages(world)
    assert content == "Four."
    assert [(f.filename, f.data) for f in reply.attachments] == [("reasoning.md", b"Two and two.")]
    assert all(not v.attachments for v in reply.versions[:-1])  # only the final version carries it


NOTES = b"# Notes\nall good"
NOTES_TURN = "summarise\n\nAttached file `notes.md`:\n```\n# Notes\nall good\n```"


async def chat_with_file(world: World, bot: StreamcordBot) -> int:
    """/chat with a file; the reply's id once the interaction is answered (the fake refuses an answer
    later than Discord's 3 s)."""
    notes = world.discord.upload("notes.md", NOTES, "text/markdown")
    interaction = await world.discord.run_slash_command(
        world.guild_id, world.channel_id, world.alice, "chat", {"prompt": "summarise", "file": notes}
    )
    await world.discord.wait_for(lambda: interaction.message_id is not None, what="the interaction answered")
    assert interaction.message_id is not None
    return interaction.message_id


async def test_chat_file_answers_the_interaction_before_a_slow_cdn_sends_the_file(
    world: World, bot: StreamcordBot
) -> None:
    world.discord.cdn_delay = 3.5  # past Discord's deadline for answering an interaction
    world.llm.enqueue(Scenario(text="All good, it says."))
    reply_id = await chat_with_file(world, bot)
    assert world.discord.cdn_served == 0 and not world.llm.requests  # answered before the file came
    await world.discord.wait_for(lambda: not bot.streams, timeout=20, what="the answer")
    assert user_turn(world) == NOTES_TURN
    assert world.discord.messages[reply_id].content == "All good, it says."


async def test_a_cdn_slower_than_the_bound_gets_an_answer_that_says_so(
    world: World, bot: StreamcordBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bot.question.FETCH_TIMEOUT", 0.5)
    world.discord.cdn_delay = 3.0
    world.llm.enqueue(Scenario(text="I see no file."))
    reply_id = await chat_with_file(world, bot)
    await world.discord.wait_for(lambda: not bot.streams, timeout=20, what="the answer")
    assert user_turn(world) == "summarise"
    content = world.discord.messages[reply_id].content
    assert content == "I see no file.\n📎 skipped notes.md (could not be downloaded)"


async def test_a_mention_shows_its_placeholder_while_its_file_downloads(
    world: World, bot: StreamcordBot
) -> None:
    world.discord.cdn_delay = 2.0
    world.llm.enqueue(Scenario(text="All good."))
    await mention(world, "summarise", attachments=[world.discord.upload("notes.md", NOTES, "text/markdown")])
    await world.discord.wait_for(lambda: bool(bot_messages(world)), what="the placeholder")
    [reply] = bot_messages(world)
    assert reply.content == MARKER and world.discord.cdn_served == 0 and not world.llm.requests
    await world.discord.wait_for(lambda: not bot.streams, timeout=20, what="the answer")
    assert reply.content == "All good." and user_turn(world) == NOTES_TURN


async def test_a_400_that_is_not_about_images_is_not_retried_without_them(
    world: World, bot: StreamcordBot
) -> None:
    world.llm.enqueue(Scenario(context_length_exceeded=True))
    await mention(world, "what is this?", attachments=[world.discord.upload("a.png", PNG, "image/png")])
    [content] = await answers(world, bot, 1)
    assert len(world.llm.requests) == 1
    assert IMAGES_REFUSED not in content and "too long for this model" in content


async def test_files_on_earlier_turns_of_a_reply_chain_go_to_the_model(
    world: World, bot: StreamcordBot
) -> None:
    world.llm.enqueue(Scenario(text="Noted."))
    await mention(world, "summarise", attachments=[world.discord.upload("notes.md", NOTES, "text/markdown")])
    await answers(world, bot, 1)
    world.llm.enqueue(Scenario(text="Still good."))
    await world.discord.post_message(
        world.channel_id, world.alice, "and now?", reply_to=bot_messages(world)[0].id
    )
    await world.discord.wait_for(
        lambda: len(bot_messages(world)) == 2 and not bot.streams, timeout=20, what="the second answer"
    )
    assert world.llm.requests[1].body["messages"][-3:] == [
        {"role": "user", "content": NOTES_TURN, "name": "Alice"},
        {"role": "assistant", "content": "Noted."},
        {"role": "user", "content": "and now?", "name": "Alice"},
    ]


async def test_a_text_file_past_the_context_budget_is_cut_short_and_noted(
    world: World, bot: StreamcordBot
) -> None:
    await bot.settings.set(world.guild_id, "channel", world.channel_id, "context_tokens", "256", world.admin)
    await bot.settings.set(world.guild_id, "channel", world.channel_id, "system_prompt", "none", world.admin)
    world.llm.enqueue(Scenario(text="Long log."))
    big = "line of the log\n" * 1000
    await mention(world, "read", attachments=[world.discord.upload("big.log", big.encode(), "text/plain")])
    [content] = await answers(world, bot, 1)
    sent = user_turn(world)
    assert isinstance(sent, str) and sent.startswith("read\n\nAttached file `big.log`:\n```\nline of the log")
    assert len(sent) < 256 * 4  # inside the budget
    assert content == "Long log.\n📎 cut short to fit the context: big.log"
