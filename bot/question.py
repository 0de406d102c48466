"""A question as the model gets it: the prompt with its attachments, and how the channel wants the answer."""

from __future__ import annotations

from bot.attachment_fetch import AttachmentFetcher
from bot.attachments import AttachmentInfo, Prepared, user_content
from bot.llm import ContentPart
from bot.settings import ChannelSettings
from bot.status import skipped_files
from bot.streaming.options import AnswerOptions


async def prepare_question(
    fetcher: AttachmentFetcher, prompt: str, attachments: list[AttachmentInfo], settings: ChannelSettings
) -> tuple[str | list[ContentPart], AnswerOptions]:
    """The user turn, and the answer's options (with a note naming the files skipped)."""
    prepared = await fetcher.prepare(attachments, vision=settings.vision) if attachments else Prepared()
    notes = (skipped_files([(s.filename, s.reason) for s in prepared.skipped]),) if prepared.skipped else ()
    return user_content(prompt, prepared), AnswerOptions(reasoning=settings.reasoning, notes=notes)
