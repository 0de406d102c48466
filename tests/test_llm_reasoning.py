"""bot/llm.py against the fake model server: reasoning in both forms comes out apart from the answer."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.llm import ChatRequest, Finish, LLMClient, Reasoning
from fakes.llm_server import FakeLLM, Scenario

REQUEST = ChatRequest("fake-model", [{"role": "user", "content": "2+2?"}], 0.5, None, reasoning_effort="low")


@pytest.fixture
async def llm() -> AsyncIterator[tuple[FakeLLM, LLMClient]]:
    async with FakeLLM() as fake:
        client = LLMClient(base_url=fake.base_url, api_key=fake.api_key, timeout=5)
        yield fake, client
        await client.close()


async def events(client: LLMClient) -> tuple[str, str, Finish]:
    reasoning, answer, finish = "", "", None
    async for event in client.stream_chat(REQUEST):
        if isinstance(event, Reasoning):
            reasoning += event.text
        elif isinstance(event, Finish):
            finish = event
        else:
            answer += event.text
    assert finish is not None
    return reasoning, answer, finish


@pytest.mark.parametrize(
    "scenario",
    [
        Scenario(text="Four.", reasoning=["Two and", " two."]),
        Scenario(text="Four.", reasoning=["Two and", " two."], reasoning_field="reasoning"),
        Scenario(tokens=["<th", "ink>Two and", " two.</", "think>\n\n", "Four."]),
    ],
)
async def test_reasoning_is_kept_apart(llm: tuple[FakeLLM, LLMClient], scenario: Scenario) -> None:
    fake, client = llm
    fake.enqueue(scenario)
    reasoning, answer, finish = await events(client)
    assert (reasoning, answer, finish.reason) == ("Two and two.", "Four.", "stop")
    assert fake.requests[0].body["reasoning_effort"] == "low"
    if scenario.reasoning:
        assert finish.usage is not None and finish.usage.reasoning_tokens == 2


async def test_reasoning_effort_not_sent_when_empty(llm: tuple[FakeLLM, LLMClient]) -> None:
    fake, client = llm
    async for _ in client.stream_chat(ChatRequest("fake-model", REQUEST.messages, 0.5, None)):
        pass
    assert "reasoning_effort" not in fake.requests[0].body
