"""A question as the model gets it: the prompt with its files after the conversation that fits. Read inside
the answer (bot/streaming/options.py's Question), so the reply shows while files download and the
conversation is fetched."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from bot.attachment_fetch import FETCH_TIMEOUT, AttachmentFetcher
from bot.attachments import AttachmentInfo, Prepared, user_content
from bot.conversation import Turn
from bot.prompt import fit_files, fit_request
from bot.settings import ChannelSettings
from bot.status import cut_to_fit, left_out, skipped_files
from bot.streaming.options import Asked, Unanswerable

EMPTY_PROMPT = "Ask me something: your message had no text I can read."

Conversation = Callable[[], Awaitable[list[Turn]]]  # the earlier turns, fetched when asked


@dataclass(frozen=True)
class Asking:
    """A question from Discord: its prompt and files, and how to read the conversation before it."""

    settings: ChannelSettings
    prompt: str
    speaker: str
    fetcher: AttachmentFetcher
    attachments: tuple[AttachmentInfo, ...] = ()
    conversation: Conversation | None = None
    chosen_model: str | None = None  # picked with /chat model:

    @property
    def model(self) -> str:
        return self.chosen_model or self.settings.model

    @property
    def reads(self) -> bool:
        return bool(self.attachments) or self.conversation is not None

    async def ask(self) -> Asked:
        """Downloads this question's files while the conversation is fetched, then the earlier turns'
        files, all inside one FETCH_TIMEOUT; the files and the turns are fitted to `context_tokens`."""
        own, earlier = Prepared(), []
        if self.reads:  # else nothing to wait for: a queued answer shows its place at once
            until = asyncio.get_running_loop().time() + FETCH_TIMEOUT
            async with asyncio.TaskGroup() as group:
                files = group.create_task(self._files(self.attachments, until))
                turns = group.create_task(self._earlier(until))
            own, earlier = files.result(), turns.result()
        prepared, cut = fit_files(self.settings, self.prompt, own)
        content = user_content(self.prompt, prepared)
        if isinstance(content, str) and not content.strip():
            raise Unanswerable(EMPTY_PROMPT)
        question = Turn("user", content, self.speaker)
        fitted = fit_request(self.settings, question, earlier, model=self.model)
        skipped = [(s.filename, s.reason) for s in prepared.skipped]
        notes = [skipped_files(skipped)] if skipped else []
        notes += [cut_to_fit(cut)] if cut else []
        notes += [left_out(fitted.left_out)] if fitted.left_out else []
        return Asked(fitted.request, tuple(notes))

    async def _files(self, attachments: tuple[AttachmentInfo, ...], until: float) -> Prepared:
        if not attachments:
            return Prepared()
        within = until - asyncio.get_running_loop().time()
        return await self.fetcher.prepare(list(attachments), vision=self.settings.vision, within=within)

    async def _earlier(self, until: float) -> list[Turn]:
        """The conversation, each earlier turn's files read into it (cut to the budget as this question's;
        their skips were noted under their own answers)."""
        turns = await self.conversation() if self.conversation is not None else []
        files = await asyncio.gather(*(self._files(turn.attachments, until) for turn in turns))
        read: list[Turn] = []
        for turn, prepared in zip(turns, files, strict=True):
            if turn.attachments:
                text = turn.content if isinstance(turn.content, str) else ""
                fitted, _ = fit_files(self.settings, text, prepared)
                turn = replace(turn, content=user_content(text, fitted), attachments=())
            if turn.content:  # a message that was only files none of which could be read: nothing said
                read.append(turn)
        return read
