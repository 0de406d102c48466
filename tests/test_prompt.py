"""The context budget and the one retry with half the history (pure; the model client is a stand-in)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx2
import openai
import pytest

from bot.conversation import Turn
from bot.llm import ChatRequest, Finish, LLMClient
from bot.prompt import Prompt, build_prompt
from bot.settings import ChannelSettings
from bot.tokens import message_tokens


def turns(n: int) -> list[Turn]:
    return [
        Turn("user", f"question {i} " + "x" * 36, "Alice") if i % 2 == 0 else Turn("assistant", f"a{i}")
        for i in range(n)
    ]


def test_without_a_tight_budget_every_allowed_turn_goes() -> None:
    settings = ChannelSettings(model="m", system_prompt="Be brief.", history=4, context_tokens=8000)
    prompt = build_prompt(settings, Turn("user", "now?", "Alice"), turns(6))
    assert [m["role"] for m in prompt.request.messages] == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
    ]
    assert prompt.request.messages[-1] == {"role": "user", "content": "now?", "name": "Alice"}
    assert prompt.left_out == 0 and prompt.note() is None


def test_the_oldest_turns_are_left_out_first_and_the_note_says_how_many() -> None:
    history = turns(30)
    question = Turn("user", "the new question", "Alice")
    settings = ChannelSettings(model="m", system_prompt="Be brief.", history=50, context_tokens=120)
    prompt = build_prompt(settings, question, history)
    messages = prompt.request.messages
    assert messages[0]["role"] == "system" and messages[-1]["content"] == "the new question"
    assert sum(message_tokens(m) for m in messages) <= 120
    kept = prompt.history
    assert 0 < len(kept) < 30 and prompt.left_out == 30 - len(kept)
    assert kept[-1]["content"] == "a29"  # the newest earlier turn is kept
    assert prompt.note() == f"ℹ️ {30 - len(kept)} earlier messages left out to fit the context"


def test_the_question_goes_even_when_it_alone_is_over_budget() -> None:
    settings = ChannelSettings(model="m", system_prompt="S", context_tokens=256)
    prompt = build_prompt(settings, Turn("user", "y" * 4000, "Alice"), turns(4))
    assert prompt.history == [] and prompt.request.messages[-1]["content"] == "y" * 4000


class Server(LLMClient):
    """Refuses requests longer than `limit` messages as a context-length error."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.seen: list[int] = []

    async def stream_chat(self, request: ChatRequest) -> AsyncIterator[str | Finish]:
        self.seen.append(len(request.messages))
        if len(request.messages) > self.limit:
            raise openai.BadRequestError(
                "too long",
                response=_response(),
                body={"error": {"code": "context_length_exceeded"}},
            )
        yield "ok"
        yield Finish("stop", None)


def _response() -> httpx2.Response:
    return httpx2.Response(400, request=httpx2.Request("POST", "http://x/v1/chat/completions"))


async def collect(prompt: Prompt, server: LLMClient) -> list[str | Finish]:
    return [event async for event in prompt.stream(server.stream_chat)]


async def test_a_full_context_is_retried_once_with_half_the_history() -> None:
    settings = ChannelSettings(model="m", system_prompt="S", history=50)
    prompt = build_prompt(settings, Turn("user", "q", "Alice"), turns(20))
    server = Server(limit=15)
    events = await collect(prompt, server)
    assert events[0] == "ok"
    assert server.seen == [22, 12]
    assert prompt.retried and len(prompt.history) == 10 and prompt.left_out == 10
    assert prompt.note() == "ℹ️ the conversation was too long for the model: retried with 10 earlier messages"


async def test_a_second_refusal_is_the_error() -> None:
    settings = ChannelSettings(model="m", system_prompt="S", history=50)
    prompt = build_prompt(settings, Turn("user", "q", "Alice"), turns(20))
    with pytest.raises(openai.BadRequestError):
        await collect(prompt, Server(limit=3))
