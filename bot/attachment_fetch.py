"""Downloads the attachments a question carries, never past their limits, into what the model gets."""

from __future__ import annotations

import asyncio
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

# Seconds for all of a question's downloads together, connect to last byte. The reply's placeholder is up
# meanwhile, so this bounds only how long an answer may wait for a slow CDN.
FETCH_TIMEOUT = 15.0
NOT_DOWNLOADED = "could not be downloaded"


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

    async def prepare(
        self, attachments: list[AttachmentInfo], *, vision: bool, within: float = FETCH_TIMEOUT
    ) -> Prepared:
        """Fetch what the limits allow, all at once and within ``within`` seconds together, kept in order;
        everything else is skipped with a reason."""
        selection = select(attachments, vision=vision)
        prepared = Prepared(skipped=list(selection.skipped))
        wanted = [(info, TEXT_MAX_BYTES, False) for info in selection.text]
        wanted += [(info, IMAGE_MAX_BYTES, True) for info in selection.images]
        if not wanted:
            return prepared
        downloads = [asyncio.create_task(self._fetch(info, limit)) for info, limit, _ in wanted]
        try:
            _, late = await asyncio.wait(downloads, timeout=max(within, 0.0))
        finally:
            for download in downloads:
                download.cancel()
        for (info, _, image), download in zip(wanted, downloads, strict=True):
            if download in late:
                log.warning("Attachment %s not downloaded within %.0f s", info.id, within)
            result = Skipped(info.filename, NOT_DOWNLOADED) if download in late else download.result()
            if isinstance(result, Skipped):
                prepared.skipped.append(result)
            elif image:
                prepared.images.append(image_url(result, info))
            elif (text := decode_text(result)) is not None:
                prepared.texts.append((info.filename, text))
            else:
                prepared.skipped.append(Skipped(info.filename, "not a text file or an image"))
        return prepared

    async def _fetch(self, info: AttachmentInfo, limit: int) -> bytes | Skipped:
        """The file's bytes, or why the model won't get them."""
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            async with self._session.get(info.url) as response:
                response.raise_for_status()
                data = await read_capped(response.content.iter_chunked(64 * 1024), limit)
        except (TimeoutError, aiohttp.ClientError) as exc:
            log.warning("Attachment %s could not be downloaded: %s", info.id, type(exc).__name__)
            return Skipped(info.filename, NOT_DOWNLOADED)
        # None: the size Discord reported was wrong; reading stopped at the limit.
        return data if data is not None else Skipped(info.filename, over_limit(limit))
