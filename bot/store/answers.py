"""Which messages make up each answer and what started it, so a reply to any page finds the whole answer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from bot.db import Database, to_db_time, utcnow


@dataclass(frozen=True)
class AnswerOrigin:
    """What an answer answered: a prompt message (mentions, replies) or a /chat prompt's text."""

    guild_id: int | None
    channel_id: int
    author_id: int
    author_name: str
    prompt_message_id: int | None = None
    prompt_text: str | None = None


@dataclass(frozen=True)
class AnswerRecord:
    """Where an answer's pages are recorded: under its own request, or, for the continuation of a cut-off
    answer, after that answer's pages, so a reply to any page sees the whole text."""

    request_id: str
    origin: AnswerOrigin
    earlier_pages: tuple[int, ...] = ()


@dataclass(frozen=True)
class Answer:
    request_id: str
    origin: AnswerOrigin
    message_ids: list[int]  # the pages, in order


class AnswersStore:
    def __init__(self, db: Database, *, clock: Callable[[], datetime] = utcnow) -> None:
        self._db = db
        self._clock = clock

    async def set_pages(self, request_id: str, origin: AnswerOrigin, message_ids: list[int]) -> None:
        """Record the answer (once) and its pages so far; called each time a page is created."""
        async with self._db.transaction():
            await self._db.execute(
                "INSERT INTO answers (request_id, guild_id, channel_id, prompt_message_id, prompt_text,"
                " prompt_author_id, prompt_author, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                (
                    request_id,
                    origin.guild_id,
                    origin.channel_id,
                    origin.prompt_message_id,
                    origin.prompt_text,
                    origin.author_id,
                    origin.author_name,
                    to_db_time(self._clock()),
                ),
            )
            for page, message_id in enumerate(message_ids):
                await self._db.execute(
                    "INSERT INTO answer_pages (message_id, request_id, page) VALUES (?, ?, ?)"
                    " ON CONFLICT DO NOTHING",
                    (message_id, request_id, page),
                )

    async def by_message(self, message_id: int) -> Answer | None:
        """The answer one of whose pages is this message."""
        row = await self._db.fetchone(
            "SELECT a.* FROM answer_pages p JOIN answers a USING (request_id) WHERE p.message_id = ?",
            (message_id,),
        )
        if row is None:
            return None
        pages = await self._db.fetchall(
            "SELECT message_id FROM answer_pages WHERE request_id = ? ORDER BY page", (row["request_id"],)
        )
        origin = AnswerOrigin(
            guild_id=row["guild_id"],
            channel_id=row["channel_id"],
            author_id=row["prompt_author_id"],
            author_name=row["prompt_author"],
            prompt_message_id=row["prompt_message_id"],
            prompt_text=row["prompt_text"],
        )
        return Answer(row["request_id"], origin, [p["message_id"] for p in pages])
