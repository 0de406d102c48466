"""Conversation history from reply chains and recent messages (the service, with a fetcher in memory)."""

from __future__ import annotations

import asyncio

from bot.conversation import Turn
from bot.db import Database
from bot.history import ChatMessage, History, IdCache
from bot.store.answers import AnswerOrigin, AnswersStore

CHANNEL = 1
BOT = 99


class Fetcher:
    def __init__(self) -> None:
        self.messages: dict[int, ChatMessage] = {}
        self.fetched: list[int] = []
        self.gate: asyncio.Event | None = None
        self.fetching = asyncio.Event()

    def add(self, mid: int, content: str, *, reply_to: int | None = None, author: str = "Alice") -> None:
        bot = author == "bot"
        self.messages[mid] = ChatMessage(mid, BOT if bot else hash(author), author, content, reply_to, bot)

    async def fetch(self, channel_id: int, message_id: int) -> ChatMessage | None:
        self.fetched.append(message_id)
        self.fetching.set()
        message = self.messages.get(message_id)  # read now: an edit while the response travels is missed
        if self.gate is not None:
            await self.gate.wait()
        return message

    async def recent(self, channel_id: int, before_id: int, limit: int) -> list[ChatMessage]:
        return sorted((m for m in self.messages.values() if m.id < before_id), key=lambda m: -m.id)[:limit]


def chat_origin(prompt: str, author: str = "Alice") -> AnswerOrigin:
    return AnswerOrigin(None, CHANNEL, 5, author, prompt_text=prompt)


async def test_a_reply_to_page_two_sees_the_chat_prompt_and_the_whole_answer(db: Database) -> None:
    fetcher, answers = Fetcher(), AnswersStore(db)
    # The renderer keeps the line break it cut at before the fence it closes.
    fetcher.add(10, "First part,\n\n```py\nx = 1\n\n```", author="bot")
    fetcher.add(11, "```py\ny = 2\n```\nend.", author="bot")
    fetcher.add(12, "and then?", reply_to=11, author="Bob")
    await answers.set_pages("r1", chat_origin("Explain"), [10, 11])
    history = History(fetcher, answers, in_flight=lambda _: False)

    turns = await history.chain(CHANNEL, 12, limit=10)
    assert turns == [
        Turn("user", "Explain", "Alice"),
        Turn("assistant", "First part,\n\n```py\nx = 1\ny = 2\n```\nend."),
        Turn("user", "and then?", "Bob"),
    ]


async def test_a_mention_answer_leads_on_to_its_prompt_and_status_lines_stay_out(db: Database) -> None:
    fetcher, answers = Fetcher(), AnswersStore(db)
    fetcher.add(1, "capital of France?")
    fetcher.add(2, "Paris\n⏹ stopped by Alice", reply_to=1, author="bot")
    fetcher.add(3, "Slow down a little", reply_to=1, author="bot")  # a notice, not an answer
    fetcher.add(4, "population?", reply_to=2)
    await answers.set_pages("r", AnswerOrigin(None, CHANNEL, 5, "Alice", prompt_message_id=1), [2])
    history = History(fetcher, answers, in_flight=lambda _: False)
    assert await history.chain(CHANNEL, 4, limit=10) == [
        Turn("user", "capital of France?", "Alice"),
        Turn("assistant", "Paris"),
        Turn("user", "population?", "Alice"),
    ]
    assert await history.chain(CHANNEL, 3, limit=10) == [Turn("user", "capital of France?", "Alice")]


async def test_a_gap_ends_the_chain_and_the_limit_counts_turns(db: Database) -> None:
    fetcher, answers = Fetcher(), AnswersStore(db)
    for i in range(1, 8):
        fetcher.add(i, f"m{i}", reply_to=i - 1 if i > 1 else None)
    del fetcher.messages[3]
    history = History(fetcher, answers, in_flight=lambda _: False)
    assert [t.content for t in await history.chain(CHANNEL, 7, limit=10)] == ["m4", "m5", "m6", "m7"]
    assert [t.content for t in await history.chain(CHANNEL, 7, limit=2)] == ["m6", "m7"]


async def test_cached_messages_are_not_fetched_again_but_in_flight_pages_are(db: Database) -> None:
    fetcher, answers = Fetcher(), AnswersStore(db)
    fetcher.add(1, "q")
    fetcher.add(2, "partial ▌", reply_to=1, author="bot")
    await answers.set_pages("r", AnswerOrigin(None, CHANNEL, 5, "Alice", prompt_message_id=1), [2])
    streaming = {2}
    history = History(fetcher, answers, in_flight=lambda mid: mid in streaming)
    assert [t.content for t in await history.chain(CHANNEL, 2, limit=10)] == ["q", "partial"]
    fetcher.fetched.clear()
    fetcher.add(2, "partial and done.", reply_to=1, author="bot")
    streaming.clear()
    assert [t.content for t in await history.chain(CHANNEL, 2, limit=10)] == ["q", "partial and done."]
    assert fetcher.fetched == [2]
    fetcher.fetched.clear()
    await history.chain(CHANNEL, 2, limit=10)
    assert fetcher.fetched == []


async def test_an_edit_during_a_fetch_keeps_the_old_version_out_of_the_cache(db: Database) -> None:
    fetcher = Fetcher()
    fetcher.add(1, "before")
    fetcher.gate = asyncio.Event()
    history = History(fetcher, AnswersStore(db), in_flight=lambda _: False)
    walk = asyncio.create_task(history.chain(CHANNEL, 1, limit=5))
    await fetcher.fetching.wait()
    history.forget(1)  # MESSAGE_UPDATE arrived while the old version was on its way
    fetcher.add(1, "after")
    fetcher.gate.set()
    assert [t.content for t in await walk] == ["before"]
    assert [t.content for t in await history.chain(CHANNEL, 1, limit=5)] == ["after"]
    history.forget(1)
    assert len(history.cache) == 0


async def test_recent_messages_group_answer_pages_and_bring_back_chat_prompts(db: Database) -> None:
    fetcher, answers = Fetcher(), AnswersStore(db)
    fetcher.add(10, "page one", author="bot")
    fetcher.add(11, "page two", author="bot")
    fetcher.add(12, "follow-up", author="Bob")
    fetcher.add(13, "ignored: after the new message")
    await answers.set_pages("r", chat_origin("Start"), [10, 11])
    history = History(fetcher, answers, in_flight=lambda _: False)
    assert await history.recent(CHANNEL, 13, limit=10) == [
        Turn("user", "Start", "Alice"),
        Turn("assistant", "page one page two"),
        Turn("user", "follow-up", "Bob"),
    ]


def test_the_cache_is_bounded_and_forgets_the_least_recently_used() -> None:
    cache: IdCache[ChatMessage] = IdCache(size=2)
    one, two, three = (ChatMessage(i, 1, "a", "x", None, False) for i in (1, 2, 3))
    cache.put(1, one)
    cache.put(2, two)
    assert cache.get(1) is one
    cache.put(3, three)
    assert (cache.get(1), cache.get(2), cache.get(3), len(cache)) == (one, None, three, 2)
