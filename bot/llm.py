"""The model server: one AsyncOpenAI client for the process, streamed chat completions, user-facing errors."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NotRequired, TypedDict, cast

import httpx2
import openai

from bot.circuit import CircuitOpen
from bot.model_retry import error_code
from bot.reasoning import ThinkSplitter
from bot.sse import sse_pieces

log = logging.getLogger(__name__)

_MODELS_TTL = 300.0
PAUSE_MAX = 1.0  # the longest a stream's reading pauses (bounded below the read timeout too)

# What the reader waits for before the next read of a stream (the next edit), or None to read at once.
BetweenReads = Callable[[], Awaitable[None] | None]


# A content part: {"type": "text", "text": ...} or {"type": "image_url", "image_url": {"url": ...}}.
ContentPart = dict[str, Any]


class Message(TypedDict):
    role: str
    content: str | list[ContentPart]  # a list only when the turn carries images
    name: NotRequired[str]  # who spoke a user turn (OpenAI's ^[a-zA-Z0-9_-]{1,64}$)


def message_text(message: Message) -> str:
    """A message's text, without its images."""
    content = message["content"]
    if isinstance(content, str):
        return content
    return "\n\n".join(str(part.get("text", "")) for part in content if part.get("type") == "text")


@dataclass(frozen=True)
class ChatRequest:
    model: str
    messages: list[Message]
    temperature: float
    max_tokens: int | None
    reasoning_effort: str | None = None  # None: not sent (servers without it may refuse the field)
    fallback_model: str | None = None  # asked when the model fails before any text (bot/model_calls.py)


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int = 0  # part of completion_tokens; some models price them apart


@dataclass(frozen=True, slots=True)
class Text:
    """Answer text that arrived together, and the number of chunks it came in (about one token each)."""

    text: str
    chunks: int


@dataclass(frozen=True, slots=True)
class Reasoning:
    """A piece of the model's thinking."""

    text: str


@dataclass(frozen=True)
class Finish:
    """The last event of a stream: why the model stopped, and the server's usage if it sent one."""

    reason: str | None
    usage: Usage | None


class ModelStreamError(openai.APIError):
    """An error event inside the stream (vLLM, OpenRouter and others send these mid-answer)."""


class LLMClient:
    def __init__(self, *, base_url: str, api_key: str, timeout: float) -> None:
        # The library default is a 600 s timeout; a chat user gives up far sooner. The read timeout bounds the
        # gap between two chunks, not the whole answer. No hidden retries: bot/model_calls.py retries and
        # shows each retry to the user. The library's aiohttp transport reads a stream for less CPU per
        # chunk than its default HTTP stack (aiohttp parses HTTP in C), and reads what has arrived at once.
        self.base_url = base_url
        self._client = openai.AsyncOpenAI(
            base_url=base_url,
            api_key=api_key,
            timeout=openai.Timeout(timeout, connect=10.0),
            max_retries=0,
            http_client=openai.DefaultAioHttpClient(),
        )
        # The library imports its chat resources (19 modules, ~30 ms of CPU) when first used: here, at start,
        # rather than in the first answer.
        self._chat = self._client.chat.completions.with_streaming_response
        self._models: list[str] = []
        self._models_at = float("-inf")
        # A pause must end well inside the read timeout, which keeps running while the socket is paused.
        self._pause_max = min(PAUSE_MAX, timeout / 4)

    async def close(self) -> None:
        await self._client.close()

    async def stream_chat(
        self, request: ChatRequest, between_reads: BetweenReads | None = None
    ) -> AsyncGenerator[Text | Reasoning | Finish, None]:
        """Yield answer text and reasoning (`delta.reasoning_content`, `delta.reasoning`, or a
        leading `<think>` block in the content), then one Finish. Closing the generator (or cancelling its
        consumer) closes the HTTP response, which stops generation upstream.

        After each piece of answer text, what ``between_reads`` returns is awaited with the socket paused:
        the chunks arriving meanwhile gather in the kernel and are then read, parsed and handed on together.
        Reading each token as it comes cost more CPU than everything else an answer does.

        The library still sends the request (auth, retries, timeouts, status errors), but the chunks are
        read as plain JSON: building a typed model per chunk was half the bot's CPU under load."""
        reason: str | None = None
        usage: Usage | None = None
        splitter: ThinkSplitter | None = ThinkSplitter()  # None once the answer has begun
        # The messages go in extra_body, which replaces the empty list in the request's JSON: the library's
        # parameter transform walks every message through type introspection (a sixth of the bot's CPU in a
        # burst of answers), and ours are plain JSON already. Effort is a plain string, not the typed param.
        async with self._chat.create(  # type: ignore[call-overload]
            model=request.model,
            messages=[],
            extra_body={"messages": request.messages},
            temperature=request.temperature,
            max_tokens=request.max_tokens,
            stream=True,
            stream_options={"include_usage": True},
            reasoning_effort=request.reasoning_effort or openai.omit,
        ) as response:
            # Keep reading after finish_reason: the usage chunk comes last. Everything that arrived together
            # is handed on together: the answer text of a batch as one string, so the layers above run once
            # per read, not once per token.
            done = False
            transport = _transport_of(response.http_response)
            async for piece in sse_pieces(response.http_response.aiter_bytes()):
                text: list[str] = []
                for chunk in piece:
                    if chunk is None:
                        done = True
                        break
                    if chunk.get("error"):
                        if text:  # the answer up to the error still shows
                            yield Text("".join(text), len(text))
                        raise ModelStreamError(
                            _stream_error(chunk["error"]), response.http_request, body=chunk["error"]
                        )
                    usage = _usage(chunk.get("usage")) or usage
                    for choice in (chunk.get("choices") or [])[:1]:
                        delta = choice.get("delta") or {}
                        thought = delta.get("reasoning_content") or delta.get("reasoning")
                        content = delta.get("content")
                        if content and splitter is not None:
                            more, content = splitter.feed(content)
                            thought = (thought or "") + more
                            if splitter.done:
                                splitter = None
                        if thought:
                            if text:  # what came before the thought shows before it
                                yield Text("".join(text), len(text))
                                text = []
                            yield Reasoning(thought)
                        if content:
                            text.append(content)
                        reason = choice.get("finish_reason") or reason
                if text:
                    yield Text("".join(text), len(text))
                    if between_reads is not None:
                        await self._pause(between_reads, transport)
                if done:
                    break
            else:
                if reason is None:  # the body ended cleanly but early, e.g. a proxy gave up
                    raise openai.APIConnectionError(
                        message="The stream ended early.", request=response.http_request
                    )
        if splitter is not None:
            thought, content = splitter.flush()
            if thought:
                yield Reasoning(thought)
            if content:
                yield Text(content, 1)
        yield Finish(reason, usage)

    async def _pause(self, between_reads: BetweenReads, transport: asyncio.Transport | None) -> None:
        waiting = between_reads()
        if waiting is None:
            return
        if transport is not None:
            transport.pause_reading()
        try:
            async with asyncio.timeout(self._pause_max):
                await waiting
        except TimeoutError:
            pass
        finally:
            # Always: a connection goes back to the pool after the stream, and must read there.
            if transport is not None and not transport.is_closing():
                transport.resume_reading()

    async def list_models(self) -> list[str]:
        """Model ids the server offers, cached for a few minutes; [] when the server cannot list them."""
        if time.monotonic() - self._models_at < _MODELS_TTL:
            return self._models
        try:
            self._models = sorted([m.id async for m in self._client.models.list()])
        except (openai.OpenAIError, httpx2.HTTPError) as exc:
            log.warning("Could not list models from the model server: %s", type(exc).__name__)
            return self._models
        self._models_at = time.monotonic()
        return self._models


async def models_within(llm: LLMClient, timeout: float) -> list[str]:
    """The model list if it comes within `timeout` (autocomplete has 3 s), else []; the listing goes on
    shielded, so it still fills the cache for the next keystroke."""
    try:
        return await asyncio.wait_for(asyncio.shield(llm.list_models()), timeout)
    except TimeoutError:
        return []


def _transport_of(response: httpx2.Response) -> asyncio.Transport | None:
    """The socket of a response read through the library's aiohttp transport, or None (another transport,
    or a library version laid out differently: then reading just isn't paused)."""
    stream = getattr(response.stream, "_stream", None)  # inside httpx's BoundAsyncStream
    connection = getattr(getattr(stream, "_aiohttp_response", None), "connection", None)
    transport = getattr(connection, "transport", None)
    if transport is None or transport.is_closing() or not transport.is_reading():
        return None
    return cast(asyncio.Transport, transport)


def _usage(raw: object) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    prompt, completion = raw.get("prompt_tokens"), raw.get("completion_tokens")
    if isinstance(prompt, int) and isinstance(completion, int):
        details = raw.get("completion_tokens_details")
        reasoning = details.get("reasoning_tokens") if isinstance(details, dict) else None
        return Usage(prompt, completion, reasoning if isinstance(reasoning, int) else 0)
    return None


def _stream_error(error: object) -> str:
    message = error.get("message") if isinstance(error, dict) else None
    return message if isinstance(message, str) and message else "An error occurred during streaming"


def describe_error(exc: BaseException, model: str, *, mid_answer: bool) -> str:
    """A short message for the Discord user; the details go to the log."""
    if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
        return "The model server rejected the bot's API key. Ask the bot's owner to check it."
    if isinstance(exc, openai.RateLimitError):
        return "The model server is rate limiting requests. Try again in a moment."
    if isinstance(exc, openai.NotFoundError):
        return f"The model `{model}` is not available on the model server."
    if isinstance(exc, CircuitOpen):
        return f"The model server is unavailable. Try again in about {max(round(exc.retry_in), 1)} s."
    if isinstance(exc, openai.BadRequestError):
        if error_code(exc) == "context_length_exceeded":
            return "The conversation is too long for this model. Start a new one or lower `history`."
        return "The model server refused the request."
    if isinstance(exc, openai.APIStatusError):
        return f"The model server had an error (HTTP {exc.status_code}). Try again in a moment."
    if isinstance(exc, ModelStreamError):
        return f"The model server reported an error: {exc.message[:200]}"
    if isinstance(exc, openai.APITimeoutError | httpx2.TimeoutException | TimeoutError):
        return "The model server took too long to answer."
    if isinstance(exc, httpx2.HTTPError | openai.APIError):
        if mid_answer:
            return "The model server dropped the connection mid-answer."
        return "Could not reach the model server."
    return "Something went wrong while generating this answer."
