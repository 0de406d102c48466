"""Conversation history rebuilt from Discord: a reply chain, or a thread's or DM's latest messages.

Knows no discord.py: messages come from a MessageFetcher (bot/discord_history.py implements it through the
pacer), answers' pages and prompts from the answers table. Fetched messages are kept in a bounded cache by
id, so a long chain is not fetched again on every reply."""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from bot.attachments import AttachmentInfo
from bot.conversation import Turn, join_pages, shown_answer
from bot.store.answers import Answer, AnswersStore

log = logging.getLogger(__name__)

CACHE_SIZE = 5000
T = TypeVar("T")


@dataclass(frozen=True)
class ChatMessage:
    """A Discord message as conversation history needs it."""

    id: int
    author_id: int
    author_name: str
    content: str  # without the mention that addressed the bot
    reference_id: int | None  # the message it replies to
    from_bot: bool  # written by this bot
    attachments: tuple[AttachmentInfo, ...] = ()


class MessageFetcher(Protocol):
    async def fetch(self, channel_id: int, message_id: int) -> ChatMessage | None:
        """The message, or None if it was deleted or the bot may not read it."""
        ...

    async def recent(self, channel_id: int, before_id: int, limit: int) -> list[ChatMessage]:
        """Up to `limit` messages sent before `before_id`, newest first."""
        ...


class IdCache(Generic[T]):
    """The latest `size` values used, by message id (least recently used go first)."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self._size = size
        self._values: OrderedDict[int, T] = OrderedDict()

    def __len__(self) -> int:
        return len(self._values)

    def get(self, message_id: int) -> T | None:
        value = self._values.get(message_id)
        if value is not None:
            self._values.move_to_end(message_id)
        return value

    def put(self, message_id: int, value: T) -> None:
        self._values[message_id] = value
        self._values.move_to_end(message_id)
        if len(self._values) > self._size:
            self._values.popitem(last=False)

    def forget(self, message_id: int) -> None:
        self._values.pop(message_id, None)


class History:
    """Earlier turns of a conversation, oldest first.

    A message is cached only once it is final: the pages of an answer still being written change with every
    edit (`in_flight` says which), and an edit or deletion seen on the gateway calls forget(), which also
    keeps a fetch already under way from caching the version it read. An answer's record (its pages and
    prompt) is cached once the answer is over, when it no longer gains pages."""

    def __init__(
        self,
        fetcher: MessageFetcher,
        answers: AnswersStore,
        *,
        in_flight: Callable[[int], bool],
        cache_size: int = CACHE_SIZE,
    ) -> None:
        self._fetcher = fetcher
        self._answers = answers
        self._in_flight = in_flight
        self.cache: IdCache[ChatMessage] = IdCache(cache_size)
        self._answer_cache: IdCache[Answer] = IdCache(cache_size)
        self._fetching: dict[int, int] = {}  # message id -> fetches under way
        self._stale: set[int] = set()  # forgotten while a fetch was under way: what it reads is old

    def forget(self, message_id: int) -> None:
        """The message was edited or deleted."""
        self.cache.forget(message_id)
        if message_id in self._fetching:
            self._stale.add(message_id)

    async def chain(self, channel_id: int, reference_id: int | None, limit: int) -> list[Turn]:
        """The reply chain behind a message that replies to `reference_id`, up to `limit` turns. A bot answer
        is one assistant turn whichever page was replied to, and leads on to its prompt; a /chat prompt
        starts the conversation. A deleted or unreadable message ends the chain there."""
        turns: list[Turn] = []  # newest first
        seen: set[int] = set()
        next_id = reference_id
        while next_id is not None and next_id not in seen and len(turns) < limit:
            seen.add(next_id)
            message = await self._message(channel_id, next_id)
            if message is None:
                break
            next_id = message.reference_id
            if not message.from_bot:
                self._add_user(turns, message)
                continue
            answer = await self._answer(message.id)
            if answer is None:
                continue  # the bot's notices (refusals, explanations) are not part of the conversation
            seen.update(answer.message_ids)
            await self._add_answer(turns, channel_id, answer)
            next_id = None if answer.origin.prompt_text is not None else answer.origin.prompt_message_id
        return turns[::-1]

    async def recent(self, channel_id: int, before_id: int, limit: int) -> list[Turn]:
        """A thread's or DM's conversation: its latest `limit` messages before `before_id`."""
        if limit <= 0:
            return []
        messages = await self._fetcher.recent(channel_id, before_id, limit)
        for message in messages:
            if not self._in_flight(message.id):
                self.cache.put(message.id, message)
        turns: list[Turn] = []  # newest first
        answered: set[str] = set()
        for message in messages:
            if not message.from_bot:
                self._add_user(turns, message)
                continue
            answer = await self._answer(message.id)
            if answer is None or answer.request_id in answered:
                continue
            answered.add(answer.request_id)
            await self._add_answer(turns, channel_id, answer)
        return turns[::-1]

    @staticmethod
    def _add_user(turns: list[Turn], message: ChatMessage) -> None:
        if message.content or message.attachments:
            turns.append(Turn("user", message.content, message.author_name, message.attachments))

    async def _add_answer(self, turns: list[Turn], channel_id: int, answer: Answer) -> None:
        """The answer's full text from every page (up to a missing one), then a /chat prompt's text. A
        continued answer's pages carry its cut-off line in the middle: each page loses its status lines."""
        pages: list[str] = []
        for page_id in answer.message_ids:
            page = await self._message(channel_id, page_id)
            if page is None:
                break
            pages.append(shown_answer(page.content))
        text = join_pages(pages)
        if text:
            turns.append(Turn("assistant", text))
        origin = answer.origin
        if origin.prompt_text is not None and origin.prompt_text.strip():
            turns.append(Turn("user", origin.prompt_text, origin.author_name))

    async def _message(self, channel_id: int, message_id: int) -> ChatMessage | None:
        cached = self.cache.get(message_id)
        if cached is not None:
            return cached
        self._fetching[message_id] = self._fetching.get(message_id, 0) + 1
        try:
            message = await self._fetcher.fetch(channel_id, message_id)
        finally:
            stale = message_id in self._stale
            self._fetching[message_id] -= 1
            if not self._fetching[message_id]:
                del self._fetching[message_id]
                self._stale.discard(message_id)
        if message is not None and not stale and not self._in_flight(message_id):
            self.cache.put(message.id, message)
        return message

    async def _answer(self, message_id: int) -> Answer | None:
        answer = self._answer_cache.get(message_id)
        if answer is None:
            answer = await self._answers.by_message(message_id)
            if answer is not None and not self._in_flight(message_id):
                self._answer_cache.put(message_id, answer)
        return answer
