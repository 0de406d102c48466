"""The Server-Sent Events reader behind stream_chat (pure), and stream_chat's usage."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from bot.llm import Usage, _usage
from bot.sse import sse_pieces


async def pieces(body: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


async def collect(*items: str, newline: str = "\n") -> list[dict[str, Any] | None]:
    """The events of the lines ``items``, the same however the body arrives in pieces."""
    body = newline.join(items).encode()
    sizes = (1, 3, len(body) or 1)
    seen = [[e async for piece in sse_pieces(pieces(body, size)) for e in piece] for size in sizes]
    assert all(events == seen[0] for events in seen)
    return seen[0]


async def test_events_then_none_for_done() -> None:
    assert await collect('data: {"a": 1}', "", 'data: {"a": 2}', "", "data: [DONE]", "") == [
        {"a": 1},
        {"a": 2},
        None,
    ]


async def test_comments_other_fields_and_multiline_data() -> None:
    events = await collect(": keep-alive", "", "event: message", 'data: {"a":', "data: 1}", "", "id: 7", "")
    assert events == [{"a": 1}]


async def test_crlf_line_ends() -> None:
    assert await collect('data: {"a": 1}', "", "data: [DONE]", "", newline="\r\n") == [{"a": 1}, None]


async def test_a_last_event_without_a_blank_line_still_counts() -> None:
    assert await collect('data:{"a": 1}') == [{"a": 1}]
    assert await collect("data: [DONE]") == [None]


def test_a_partial_usage_object_counts_as_no_usage() -> None:
    assert _usage({"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}) == Usage(3, 4)
    assert _usage({"prompt_tokens": 3}) is None
    assert _usage(None) is None


def test_reasoning_tokens_come_from_the_completion_details() -> None:
    raw = {"prompt_tokens": 3, "completion_tokens": 9, "completion_tokens_details": {"reasoning_tokens": 5}}
    assert _usage(raw) == Usage(3, 9, 5)
    assert _usage({**raw, "completion_tokens_details": None}) == Usage(3, 9)


async def test_a_piece_parses_one_payload_at_a_time() -> None:
    body = b'data: {"a": 1}\n\ndata: {"a": 2}\n\ndata: not json\n\n'
    pieces_seen = sse_pieces(pieces(body, len(body)))
    piece = await anext(pieces_seen)
    assert next(piece) == {"a": 1}  # the broken third payload is not parsed until it is asked for
    assert next(piece) == {"a": 2}
