"""Server-Sent Events from a streamed body: the JSON payload of each event, parsed as its blank line arrives.

Lines (ending in LF or CRLF) are found in the bytes as they arrive: the HTTP library's text and line decoders
cost more per chunk than the JSON. Payloads come out one at a time, each parsed only when asked for, so a
piece of the body holding a second of tokens never has all of them parsed at once (under load that was most
of a stream's memory)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson

Payload = dict[str, Any] | None  # None for `data: [DONE]`


class _Decoder:
    def __init__(self) -> None:
        self._rest = b""  # an unfinished line, waiting for the next piece
        self._data: list[bytes] = []  # the data lines of the event being read

    def feed(self, piece: bytes) -> Iterator[Payload]:
        buffer = self._rest + piece if self._rest else piece
        self._rest = b""
        start = 0
        while (end := buffer.find(b"\n", start)) != -1:
            line = buffer[start:end]
            start = end + 1
            if line.startswith(b"data:"):
                self._data.append(line[5:].removeprefix(b" ").removesuffix(b"\r"))
            elif self._data and (not line or line == b"\r"):
                yield self._payload()
        self._rest = buffer[start:]

    def end(self) -> Iterator[Payload]:
        """The body ended: an event it did not close with a blank line still counts."""
        return self.feed(b"\n\n")

    def _payload(self) -> Payload:
        payload, self._data = b"\n".join(self._data), []
        return None if payload == b"[DONE]" else orjson.loads(payload)


async def sse_pieces(body: AsyncIterator[bytes]) -> AsyncIterator[Iterator[Payload]]:
    """The payloads of each piece of ``body`` as they arrived together, the body's end last: exhaust each
    before asking for the next."""
    decoder = _Decoder()
    async for piece in body:
        yield decoder.feed(piece)
    yield decoder.end()
