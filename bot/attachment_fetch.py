"""Downloads the attachments a question carries, never past their limits, into what the model gets."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable

import aiohttp

from bot.attachments import (
    IMAGE_MAX_BYTES,
    TEXT_MAX_BYTES,
    AttachmentInfo,
    Prepared,
    Skipped,
    decode_text,
    image_url,
    over_limit,
    select,
)

log = logging.getLogger(__name__)

FETCH_TIMEOUT = 20.0  # seconds for one file, connect to last byte


async def read_capped(chunks: AsyncIterable[bytes], limit: int) -> bytes | None:
    """The whole body, or None as soon as it passes ``limit`` bytes (the rest is never read)."""
    data = bytearray()
    async for chunk in chunks:
        data += chunk
        if len(data) > limit:
            return None
    return bytes(data)


class AttachmentFetcher:
    """One HTTP session for every download; the bot closes it at shutdown."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def prepare(self, attachments: list[AttachmentInfo], *, vision: bool) -> Prepared:
        """Fetch what the limits allow, in order; everything else is skipped with a reason."""
        selection = select(attachments, vision=vision)
        prepared = Prepared(skipped=list(selection.skipped))
        for info in selection.text:
            data = await self._fetch(info, TEXT_MAX_BYTES, prepared)
            text = None if data is None else decode_text(data)
            if text is not None:
                prepared.texts.append((info.filename, text))
            elif data is not None:
                prepared.skipped.append(Skipped(info.filename, "not a text file or an image"))
        for info in selection.images:
            data = await self._fetch(info, IMAGE_MAX_BYTES, prepared)
            if data is not None:
                prepared.images.append(image_url(data, info))
        return prepared

    async def _fetch(self, info: AttachmentInfo, limit: int, prepared: Prepared) -> bytes | None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=FETCH_TIMEOUT))
        try:
            async with self._session.get(info.url) as response:
                response.raise_for_status()
                data = await read_capped(response.content.iter_chunked(64 * 1024), limit)
        except (TimeoutError, aiohttp.ClientError) as exc:
            log.warning("Attachment %s could not be downloaded: %s", info.id, type(exc).__name__)
            prepared.skipped.append(Skipped(info.filename, "could not be downloaded"))
            return None
        if data is None:  # the size Discord reported was wrong; stopped at the limit
            prepared.skipped.append(Skipped(info.filename, over_limit(limit)))
        return data
