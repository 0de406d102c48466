"""The fake OpenAI server, driven by the real openai client over loopback TCP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
from openai import AsyncOpenAI, AsyncStream
from openai.types.chat import ChatCompletionChunk

from fakes.llm_server import FakeLLM, LLMRequest, Outage, Scenario, tokenize

TEXT = "Hello there, friend!\n\nHere is a list:\n- one\n- two ✨\n\n```py\nprint('hi')\n```\nBye 👋 "
MESSAGES: list[Any] = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Say hello to the channel please"},
]


@pytest.fixture
async def fake() -> AsyncIterator[FakeLLM]:
    async with FakeLLM() as server:
        yield server


@pytest.fixture
async def client(fake: FakeLLM) -> AsyncIterator[AsyncOpenAI]:
    async with AsyncOpenAI(base_url=fake.base_url, api_key="sk-fake", max_retries=0) as api:
        yield api


async def _stream_all(client: AsyncOpenAI, *, include_usage: bool = True, **kwargs: Any) -> list[Any]:
    extra: dict[str, Any] = {"stream_options": {"include_usage": True}} if include_usage else {}
    stream = await client.chat.completions.create(
        model="fake-model", messages=MESSAGES, stream=True, **extra, **kwargs
    )
    async with stream:
        return [chunk async for chunk in stream]


def _content(chunks: list[Any]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


async def _read_content(stream: AsyncStream[ChatCompletionChunk], received: list[str]) -> None:
    """Read ``stream`` to its end, appending each content delta to ``received`` as it arrives, so a test
    still sees what came before the stream failed."""
    async with stream:
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                received.append(chunk.choices[0].delta.content)


async def test_stream_reassembles_exactly_and_usage_follows_finish(
    fake: FakeLLM, client: AsyncOpenAI
) -> None:
    fake.enqueue(Scenario(text=TEXT))
    chunks = await _stream_all(client)

    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta.content == ""
    assert _content(chunks) == TEXT
    assert all(c.object == "chat.completion.chunk" and c.model == "fake-model" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    finish_idx = next(i for i, c in enumerate(chunks) if c.choices and c.choices[0].finish_reason)
    assert chunks[finish_idx].choices[0].finish_reason == "stop"
    assert finish_idx == len(chunks) - 2, "finish chunk is followed only by the usage chunk"
    usage_chunk = chunks[-1]
    assert usage_chunk.choices == []
    assert usage_chunk.usage is not None
    n_tokens = len(tokenize(TEXT))
    assert usage_chunk.usage.completion_tokens == n_tokens
    assert usage_chunk.usage.total_tokens == usage_chunk.usage.prompt_tokens + n_tokens
    assert all(c.usage is None for c in chunks[:-1])

    [rec] = fake.requests
    assert rec.body["messages"] == MESSAGES
    assert rec.tokens_sent == n_tokens
    assert rec.token_times[-1][1] == len(TEXT)
    assert rec.usage_sent and rec.finished_at is not None and rec.disconnected_at is None


async def test_prompt_tokens_deterministic_and_overridable(fake: FakeLLM, client: AsyncOpenAI) -> None:
    first = (await _stream_all(client))[-1].usage
    second = (await _stream_all(client))[-1].usage
    assert first is not None and second is not None
    assert first.prompt_tokens == second.prompt_tokens > 0
    fake.enqueue(Scenario(prompt_tokens=1234))
    third = (await _stream_all(client))[-1].usage
    assert third is not None and third.prompt_tokens == 1234


async def test_reasoning_tokens_in_the_usage(fake: FakeLLM, client: AsyncOpenAI) -> None:
    fake.enqueue(Scenario(text="a b c", reasoning_tokens=40))
    usage = (await _stream_all(client))[-1].usage
    assert usage.completion_tokens == 3 + 40  # hidden reasoning counts as completion, as OpenAI reports it
    assert usage.completion_tokens_details.reasoning_tokens == 40


async def test_no_usage_chunk_unless_requested(fake: FakeLLM, client: AsyncOpenAI) -> None:
    fake.enqueue(Scenario(text="a b c"))
    chunks = await _stream_all(client, include_usage=False)
    assert _content(chunks) == "a b c"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks)
    assert fake.requests[0].usage_sent is False

    fake.enqueue(Scenario(text="x", send_usage=False, finish_reason="length"))
    chunks = await _stream_all(client)
    assert chunks[-1].choices[0].finish_reason == "length"
    assert fake.requests[1].usage_sent is False


async def test_explicit_tokens_are_sent_verbatim(fake: FakeLLM, client: AsyncOpenAI) -> None:
    tokens = ["Hel", "lo", " ", "wor", "ld", "\n\n", "🎉"]
    fake.enqueue(Scenario(tokens=tokens))
    chunks = await _stream_all(client)
    deltas = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert deltas == tokens


async def test_pacing_respects_ttft_and_rate(fake: FakeLLM, client: AsyncOpenAI) -> None:
    ttft, tps, n = 0.2, 40.0, 8
    fake.enqueue(Scenario(tokens=[f"t{i} " for i in range(n)], ttft=ttft, tokens_per_second=tps))
    stream = await client.chat.completions.create(model="fake-model", messages=MESSAGES, stream=True)
    arrivals: list[float] = []
    async with stream:
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                arrivals.append(time.monotonic())

    [rec] = fake.requests
    times = [t for t, _ in rec.token_times]
    assert len(times) == n and times == sorted(times)
    assert [chars for _, chars in rec.token_times] == [3 * (i + 1) for i in range(n)]
    assert rec.first_token_at == times[0]
    # Loose bounds only: never early (minus clock slack), and not wildly late on a loaded machine.
    assert rec.first_token_at - rec.started_at >= ttft - 0.01
    assert times[-1] - times[0] >= (n - 1) / tps - 0.01
    assert times[-1] - rec.started_at < ttft + (n - 1) / tps + 2.0
    assert len(arrivals) == n and arrivals[0] >= rec.started_at + ttft - 0.01


async def test_unpaced_stream_is_immediate(fake: FakeLLM, client: AsyncOpenAI) -> None:
    fake.enqueue(Scenario(text="word " * 300))
    chunks = await _stream_all(client)
    assert _content(chunks) == "word " * 300
    [rec] = fake.requests
    assert rec.tokens_sent == 301 and rec.finished_at is not None  # "word", " word" x299, then " "


@pytest.mark.parametrize(
    ("status", "exc_type", "code"),
    [
        (400, openai.BadRequestError, None),
        (401, openai.AuthenticationError, "invalid_api_key"),
        (403, openai.PermissionDeniedError, None),
        (404, openai.NotFoundError, "model_not_found"),
        (429, openai.RateLimitError, "rate_limit_exceeded"),
        (500, openai.InternalServerError, None),
        (503, openai.InternalServerError, None),
    ],
)
async def test_error_status_maps_to_openai_exception(
    fake: FakeLLM, client: AsyncOpenAI, status: int, exc_type: type[openai.APIStatusError], code: str | None
) -> None:
    fake.enqueue(Scenario(status=status))
    with pytest.raises(exc_type) as info:
        await _stream_all(client)
    assert info.value.status_code == status
    assert info.value.code == code
    assert isinstance(info.value.body, dict) and info.value.body["message"]
    assert info.value.request_id is not None
    [rec] = fake.requests
    assert rec.status == status and rec.tokens_sent == 0


async def test_custom_error_body_and_slow_error(fake: FakeLLM, client: AsyncOpenAI) -> None:
    body = {"error": {"message": "nope", "type": "server_error", "code": "custom", "param": None}}
    fake.enqueue(Scenario(status=502, error_body=body, ttft=0.1))
    with pytest.raises(openai.InternalServerError) as info:
        await client.chat.completions.create(model="fake-model", messages=MESSAGES)
    assert info.value.body == body["error"]
    assert "nope" in str(info.value)
    [rec] = fake.requests
    assert rec.finished_at is not None and rec.finished_at - rec.started_at >= 0.1 - 0.01


async def test_outage_fails_the_first_requests_with_retry_after_then_recovers(
    fake: FakeLLM, client: AsyncOpenAI
) -> None:
    fake.enqueue(Scenario(text="Back."))
    fake.start_outage(Outage(status=429, requests=2, retry_after=5, retry_after_ms=4500))
    for _ in range(2):
        with pytest.raises(openai.RateLimitError) as info:
            await _stream_all(client)
        assert info.value.response.headers["retry-after"] == "5"
        assert info.value.response.headers["retry-after-ms"] == "4500"
    assert _content(await _stream_all(client)) == "Back.", "the queued scenario waited out the outage"
    assert [r.status for r in fake.requests] == [429, 429, 200]


async def test_outage_for_a_time_window(fake: FakeLLM, client: AsyncOpenAI) -> None:
    outage = fake.start_outage(Outage(status=500, seconds=0.2))
    with pytest.raises(openai.InternalServerError):
        await _stream_all(client)
    await fake.wait_for(lambda: not outage.applies("fake-model", time.monotonic()), what="outage over")
    assert _content(await _stream_all(client)) == Scenario().text


async def test_outage_until_ended_and_only_for_some_models(fake: FakeLLM, client: AsyncOpenAI) -> None:
    fake.start_outage(Outage(status=503, models=frozenset({"fake-model"})))
    for _ in range(3):
        with pytest.raises(openai.InternalServerError):
            await _stream_all(client)
    stream = await client.chat.completions.create(model="fake-model-mini", messages=MESSAGES, stream=True)
    async with stream:
        assert _content([chunk async for chunk in stream]) == Scenario().text
    fake.end_outage()
    assert _content(await _stream_all(client)) == Scenario().text


async def test_slow_failing_outage_takes_fail_delay_per_request(fake: FakeLLM, client: AsyncOpenAI) -> None:
    fake.start_outage(Outage(status=502, fail_delay=0.3))
    with pytest.raises(openai.InternalServerError):
        await _stream_all(client)
    [rec] = fake.requests
    assert rec.status == 502
    assert rec.finished_at is not None and rec.finished_at - rec.started_at >= 0.3 - 0.01


async def test_context_length_exceeded(fake: FakeLLM, client: AsyncOpenAI) -> None:
    fake.enqueue(Scenario(context_length_exceeded=True))
    with pytest.raises(openai.BadRequestError) as info:
        await _stream_all(client)
    assert info.value.status_code == 400
    assert info.value.code == "context_length_exceeded"
    assert info.value.param == "messages"
    assert "maximum context length" in info.value.message


async def test_a_context_limit_refuses_only_longer_prompts(fake: FakeLLM, client: AsyncOpenAI) -> None:
    fake.context_limit = 20
    fake.enqueue(Scenario(text="short enough"))
    long = [*MESSAGES, {"role": "user", "content": "word " * 30}]
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(model="fake-model", messages=long, stream=True)
    assert info.value.code == "context_length_exceeded"
    assert _content(await _stream_all(client)) == "short enough"
    assert [r.status for r in fake.requests] == [400, 200]


async def test_wrong_api_key_is_rejected_without_consuming_a_scenario(fake: FakeLLM) -> None:
    fake.enqueue(Scenario(text="kept for later"))
    async with AsyncOpenAI(base_url=fake.base_url, api_key="sk-wrong", max_retries=0) as bad:
        with pytest.raises(openai.AuthenticationError) as info:
            await _stream_all(bad)
        with pytest.raises(openai.AuthenticationError):
            await bad.models.list()
    assert info.value.code == "invalid_api_key"
    assert fake.requests == []
    async with AsyncOpenAI(base_url=fake.base_url, api_key="sk-fake", max_retries=0) as good:
        assert _content(await _stream_all(good)) == "kept for later"


async def test_unknown_model_is_404(fake: FakeLLM, client: AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        await client.chat.completions.create(model="gpt-nope", messages=MESSAGES, stream=True)
    assert info.value.code == "model_not_found"
    assert fake.requests == []


async def test_drop_after_breaks_the_stream_mid_way(fake: FakeLLM, client: AsyncOpenAI) -> None:
    tokens = [f"w{i} " for i in range(20)]
    fake.enqueue(Scenario(tokens=tokens, drop_after=3, tokens_per_second=200))
    received: list[str] = []
    stream = await client.chat.completions.create(model="fake-model", messages=MESSAGES, stream=True)
    with pytest.raises(openai.APIError):
        await _read_content(stream, received)
    assert received == tokens[:3]
    [rec] = fake.requests
    assert rec.tokens_sent == 3 and rec.dropped_at is not None
    assert rec.finished_at is None and rec.disconnected_at is None


async def test_hang_after_keeps_connection_open_until_client_gives_up(fake: FakeLLM) -> None:
    fake.enqueue(Scenario(tokens=["a", "b", "c", "d"], hang_after=2))
    received: list[str] = []
    async with AsyncOpenAI(base_url=fake.base_url, api_key="sk-fake", max_retries=0, timeout=0.5) as api:
        stream = await api.chat.completions.create(model="fake-model", messages=MESSAGES, stream=True)
        with pytest.raises(openai.APITimeoutError):
            await _read_content(stream, received)
    assert received == ["a", "b"]
    [rec] = fake.requests
    await fake.wait_for(lambda: rec.disconnected_at is not None, what="disconnect after client timeout")
    assert rec.tokens_sent == 2 and rec.finished_at is None


async def _open_then_leave(client: AsyncOpenAI, rec_count: int, read_tokens: int) -> None:
    stream = await client.chat.completions.create(model="fake-model", messages=MESSAGES, stream=True)
    seen = 0
    async with stream:
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                seen += 1
            if seen >= read_tokens:
                break


async def test_client_closing_early_stops_generation(fake: FakeLLM, client: AsyncOpenAI) -> None:
    fake.enqueue(Scenario(text="tok " * 500, tokens_per_second=50))
    await _open_then_leave(client, 1, read_tokens=3)
    [rec] = fake.requests
    await fake.wait_for(lambda: rec.disconnected_at is not None, timeout=5, what="disconnect noticed")
    await fake.wait_for(lambda: fake.active == 0, timeout=5, what="handler finished")
    assert rec.finished_at is None
    assert 3 <= rec.tokens_sent < 500
    assert rec.tokens_after_disconnect == 0
    # Nothing was written after the disconnect was noticed.
    assert all(t <= rec.disconnected_at for t, _ in rec.token_times)


async def test_disconnect_noticed_during_ttft_wait(fake: FakeLLM, client: AsyncOpenAI) -> None:
    fake.enqueue(Scenario(ttft=60))
    stream = await client.chat.completions.create(model="fake-model", messages=MESSAGES, stream=True)
    await stream.close()
    [rec] = fake.requests
    # Far shorter than the ttft: the handler must be cancelled, not discover the disconnect at first write.
    await fake.wait_for(lambda: rec.disconnected_at is not None, timeout=5, what="disconnect during ttft")
    await fake.wait_for(lambda: fake.active == 0, timeout=5, what="handler finished")
    assert rec.tokens_sent == 0 and rec.first_token_at is None and rec.tokens_after_disconnect == 0


async def test_non_streaming_completion(fake: FakeLLM, client: AsyncOpenAI) -> None:
    fake.enqueue(Scenario(text=TEXT, finish_reason="length"))
    completion = await client.chat.completions.create(model="fake-model-mini", messages=MESSAGES)
    assert completion.object == "chat.completion"
    assert completion.model == "fake-model-mini"
    assert completion.choices[0].message.content == TEXT
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == len(tokenize(TEXT))
    assert fake.requests[0].usage_sent


async def test_models_list_and_retrieve(fake: FakeLLM, client: AsyncOpenAI) -> None:
    page = await client.models.list()
    assert [m.id for m in page.data] == ["fake-model", "fake-model-mini"]
    assert (await client.models.retrieve("fake-model-mini")).id == "fake-model-mini"
    with pytest.raises(openai.NotFoundError):
        await client.models.retrieve("missing")


async def test_scenario_order_queue_then_responder_then_default(client: AsyncOpenAI) -> None:
    async with FakeLLM(default=Scenario(text="default"), models=["m"]) as fake:
        async with AsyncOpenAI(base_url=fake.base_url, api_key="sk-fake", max_retries=0) as api:

            async def ask() -> str | None:
                completion = await api.chat.completions.create(model="m", messages=MESSAGES)
                return completion.choices[0].message.content

            fake.enqueue(Scenario(text="q1"))
            fake.enqueue(Scenario(text="q2"))
            assert [await ask(), await ask(), await ask()] == ["q1", "q2", "default"]
            fake.responder = lambda body: Scenario(text=f"echo {body['messages'][-1]['content']}")
            fake.enqueue(Scenario(text="q3"))
            assert [await ask(), await ask()] == ["q3", f"echo {MESSAGES[-1]['content']}"]


async def test_many_concurrent_paced_streams(fake: FakeLLM, client: AsyncOpenAI) -> None:
    n = 100
    texts = [f"stream {i} " + "word " * 10 for i in range(n)]
    fake.responder = lambda body: Scenario(text=body["messages"][-1]["content"], tokens_per_second=100)

    async def one(text: str) -> str:
        stream = await client.chat.completions.create(
            model="fake-model", messages=[{"role": "user", "content": text}], stream=True
        )
        async with stream:
            return _content([c async for c in stream])

    assert await asyncio.gather(*(one(t) for t in texts)) == texts
    assert all(r.finished_at is not None for r in fake.requests)


async def test_close_does_not_wait_for_hanging_streams() -> None:
    fake = FakeLLM(default=Scenario(hang_after=0))
    await fake.start()
    api = AsyncOpenAI(base_url=fake.base_url, api_key="sk-fake", max_retries=0, timeout=60)
    try:
        stream = await api.chat.completions.create(model="fake-model", messages=MESSAGES, stream=True)
        await fake.wait_for(lambda: fake.active == 1, what="hanging stream")
        async with asyncio.timeout(5):
            await fake.close()
        with pytest.raises(openai.APIError):
            async with asyncio.timeout(5):
                _ = [chunk async for chunk in stream]
        rec: LLMRequest = fake.requests[0]
        assert rec.disconnected_at is None  # a server shutdown is not a client disconnect
    finally:
        await api.close()


async def test_wait_for_times_out_with_description(fake: FakeLLM) -> None:
    with pytest.raises(TimeoutError, match="the impossible"):
        await fake.wait_for(lambda: False, timeout=0.1, what="the impossible")


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
async def test_reasoning_chunks_come_first_and_count_as_reasoning_tokens(
    fake: FakeLLM, client: AsyncOpenAI, field: str
) -> None:
    fake.enqueue(Scenario(text="Four.", reasoning=["Two plus", " two."], reasoning_field=field))
    chunks = await _stream_all(client)
    thoughts = [(c.choices[0].delta.model_extra or {}).get(field) for c in chunks if c.choices]
    assert "".join(t for t in thoughts if t) == "Two plus two."
    assert _content(chunks) == "Four."
    usage = chunks[-1].usage
    assert usage is not None and usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == 2
    assert usage.completion_tokens == 2 + len(tokenize("Four."))


async def test_images_rejected_when_the_scenario_says_so(fake: FakeLLM, client: AsyncOpenAI) -> None:
    fake.default = Scenario(reject_images=True)
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}
    with pytest.raises(openai.BadRequestError, match="not a multimodal model"):
        await client.chat.completions.create(
            model="fake-model", messages=[{"role": "user", "content": [image]}], stream=True
        )
    assert _content(await _stream_all(client)) == Scenario().text  # text-only requests still pass


async def test_obey_max_tokens_cuts_with_finish_reason_length(fake: FakeLLM, client: AsyncOpenAI) -> None:
    fake.enqueue(Scenario(text=TEXT, obey_max_tokens=True))
    chunks = await _stream_all(client, max_tokens=3)
    assert _content(chunks) == "".join(tokenize(TEXT)[:3])
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"


async def test_endless_and_keepalive_only_streams_run_until_the_client_leaves(
    fake: FakeLLM, client: AsyncOpenAI
) -> None:
    fake.enqueue(Scenario(tokens=["la "], tokens_per_second=500, endless=True))
    fake.enqueue(Scenario(keepalive_only=True, keepalive_interval=0.01))
    for enough in (lambda rec: rec.tokens_sent > 50, lambda rec: rec.keepalives_sent > 5):
        stream = await client.chat.completions.create(model="fake-model", messages=MESSAGES, stream=True)
        rec = fake.requests[-1]
        reader = asyncio.create_task(_read_content(stream, []))
        await fake.wait_for(lambda rec=rec, enough=enough: enough(rec), what="the stream to run on")
        reader.cancel()
        await stream.close()
        await fake.wait_for(lambda rec=rec: rec.disconnected_at is not None, what="disconnect")
    assert fake.requests[-1].tokens_sent == 0
