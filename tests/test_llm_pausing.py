"""bot/llm.py against the fake model server: while the reader waits between reads, the chunks gather and
come out together, and the connection is left reading for the next request."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.llm import ChatRequest, Finish, LLMClient, Text
from fakes.llm_server import FakeLLM, Scenario

REQUEST = ChatRequest("fake-model", [{"role": "user", "content": "Count."}], 0.5, None)
WORDS = " ".join(f"w{i}" for i in range(60))


@pytest.fixture
async def llm() -> AsyncIterator[tuple[FakeLLM, LLMClient]]:
    async with FakeLLM() as fake:
        client = LLMClient(base_url=fake.base_url, api_key=fake.api_key, timeout=30)
        yield fake, client
        await client.close()


async def test_chunks_sent_during_a_pause_come_out_as_one_piece(llm: tuple[FakeLLM, LLMClient]) -> None:
    fake, client = llm
    fake.enqueue(Scenario(text=WORDS, tokens_per_second=400))
    pieces: list[Text] = []

    async def until_ten_more() -> None:
        request = fake.requests[0]
        target = request.tokens_sent + 10
        await fake.wait_for(lambda: request.tokens_sent >= target, what="ten more tokens sent")

    async for event in client.stream_chat(REQUEST, lambda: until_ten_more() if len(pieces) < 3 else None):
        if isinstance(event, Text):
            pieces.append(event)
    assert "".join(p.text for p in pieces) == WORDS
    assert sum(p.chunks for p in pieces) == 60  # still counted per chunk, for estimates
    assert all(p.chunks >= 10 for p in pieces[1:3]), [p.chunks for p in pieces]


async def test_the_connection_reads_again_after_a_pause(llm: tuple[FakeLLM, LLMClient]) -> None:
    fake, client = llm
    fake.enqueue(Scenario(text=WORDS, tokens_per_second=400))
    fake.enqueue(Scenario(text="Again."))

    async def until_all_sent() -> None:
        request = fake.requests[0]
        await fake.wait_for(lambda: request.finished_at is not None, what="the whole answer sent")

    first = [e async for e in client.stream_chat(REQUEST, until_all_sent)]
    second = [e async for e in client.stream_chat(REQUEST, until_all_sent)]
    assert isinstance(first[-1], Finish) and isinstance(second[-1], Finish)
    assert "".join(e.text for e in second if isinstance(e, Text)) == "Again."
    # The paused connection went back to the pool reading, and served the next request.
    assert fake.requests[0].client_port == fake.requests[1].client_port
