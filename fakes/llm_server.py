"""Loopback OpenAI-compatible chat-completions server for tests and the bench.

The real ``openai`` client talks to it over TCP, so everything between the bot and the wire (SSE parsing,
status-error mapping, connection handling) is exercised for real. Behaviour per request comes from a
:class:`Scenario`: queued scenarios first (FIFO), then ``responder(body)``, then the default.

Wire behaviour (mirrors api.openai.com):
- ``POST /v1/chat/completions``: streaming (``"stream": true``) answers with SSE events
  (``data: {json}\\n\\n``): a role chunk ``{"role": "assistant", "content": ""}`` (sent together with the
  first content delta, at ``ttft``), one chunk per token, a ``delta: {}`` chunk carrying ``finish_reason``,
  the usage chunk (``choices: []``) when ``stream_options.include_usage`` is set (then other chunks carry
  ``"usage": null``), then ``data: [DONE]``. Response headers go out immediately, so ``create()`` returns
  before the first token like the real API. Non-streaming requests get a ``chat.completion`` object after
  ``ttft`` plus the generation time.
- ``GET /v1/models`` and ``GET /v1/models/{id}``; a chat request for a model not in ``models`` gets OpenAI's
  404 ``model_not_found``.
- Every route requires ``Authorization: Bearer <api_key>``, else 401 ``invalid_api_key``. Only authenticated
  chat requests for a known model consume a scenario and are recorded in ``requests``.
- Error scenarios (``status`` / ``context_length_exceeded``) answer after ``ttft`` with an OpenAI-shaped body
  and the scenario's extra ``headers`` (e.g. ``Retry-After``).
- Outages (``start_outage(Outage(...))``): every chat request, or only those for some models, fails with 500,
  429 (with ``Retry-After`` / ``retry-after-ms``) or any status, for the first N requests, for a time window,
  or until ``end_outage()``, each failure taking ``fail_delay`` seconds (a gateway such as LiteLLM retrying
  its upstream takes about 5 s); then the server recovers and queued scenarios resume. Failed requests are
  recorded in ``requests`` like any other.
- Reasoning models: ``reasoning`` chunks stream first, in ``delta.reasoning_content`` (DeepSeek, vLLM) or
  ``delta.reasoning`` (OpenRouter), and count as ``completion_tokens_details.reasoning_tokens`` (included in
  ``completion_tokens``). Inline ``<think>`` blocks are just content: put them in ``tokens``.
- ``reject_images``: a request carrying an ``image_url`` part gets 400, as vision-less models answer.
- ``obey_max_tokens``: the answer stops at the request's ``max_tokens`` with ``finish_reason: "length"``.
- Runaway streams: ``endless`` repeats the tokens forever (needs ``tokens_per_second``); ``keepalive_only``
  sends nothing but ``: PROCESSING`` comment lines every ``keepalive_interval`` after the headers.
- With ``context_limit`` set, a request whose prompt is longer (the usage count below) gets
  ``context_length_exceeded`` without consuming a scenario.

Disconnects: the server runs with aiohttp ``handler_cancellation=True`` (off by default in aiohttp 3.14), so
a client closing the connection cancels the handler at once, even while it waits for ``ttft`` or between
tokens; a failed write is treated the same way. Either way the stream stops and ``disconnected_at`` is set.

Cost (the bench runs 1,000 streams at 40 tokens/s): paced streams wake on a shared 5 ms grid (one timer per
tick, not per token), each token is one f-string plus the C JSON string encoder, and when the loop runs
late every token already due goes out in a single write (``token_times`` stays per chunk), so pacing
degrades by batching, never by drifting. Measured: about half a core for 40,000 tokens/s.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import sys
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from fakes.loopback import LoopbackServer

log = logging.getLogger(__name__)

DEFAULT_MODELS: tuple[str, ...] = ("fake-model", "fake-model-mini")
SYSTEM_FINGERPRINT = "fp_streamcord_fake"
CONTEXT_LENGTH = 128_000
# Pacing granularity: token writes land on this grid (never early, at most TICK late).
TICK = 0.005
_TOKEN_RE = re.compile(r"\s*\S+|\s+")


def tokenize(text: str) -> list[str]:
    """Split ``text`` into word-ish tokens that keep their leading whitespace; ``"".join`` restores it."""
    return _TOKEN_RE.findall(text)


@dataclass
class Scenario:
    text: str = "Hello from the fake model."
    ttft: float = 0.0
    tokens_per_second: float | None = None
    tokens: list[str] | None = None
    status: int | None = None
    error_body: dict[str, Any] | None = None
    context_length_exceeded: bool = False
    drop_after: int | None = None
    hang_after: int | None = None
    end_after: int | None = None  # end the body cleanly after N chunks, with no finish_reason or [DONE]
    error_after: int | None = None  # after N chunks, an in-stream error event (as vLLM and OpenRouter send)
    error_message: str = "The model crashed."
    send_usage: bool = True
    finish_reason: str = "stop"
    prompt_tokens: int | None = None
    reasoning: list[str] | None = None  # reasoning chunks sent before the content
    reasoning_field: str = "reasoning_content"  # or "reasoning"
    reject_images: bool = False
    obey_max_tokens: bool = False
    endless: bool = False
    keepalive_only: bool = False
    keepalive_interval: float = 0.05
    # Hidden reasoning tokens the usage reports (in completion_tokens_details, and added to completion_tokens)
    reasoning_tokens: int | None = None
    headers: dict[str, str] | None = None  # extra response headers for an error scenario

    def token_list(self) -> list[str]:
        return list(self.tokens) if self.tokens is not None else tokenize(self.text)


@dataclass
class Outage:
    """The model server failing for a while, then recovering (see the module docstring)."""

    status: int = 500
    requests: int | None = None  # fail only the first N requests
    seconds: float | None = None  # fail only for this long from start_outage()
    retry_after: float | None = None  # a Retry-After header, in seconds
    retry_after_ms: float | None = None  # OpenAI's retry-after-ms header
    fail_delay: float = 0.0  # each failure takes this long, like a gateway retrying upstream
    models: frozenset[str] | None = None  # only requests for these models fail; None: all
    started_at: float = field(default_factory=time.monotonic)
    failed: int = 0

    def applies(self, model: str, now: float) -> bool:
        if self.models is not None and model not in self.models:
            return False
        if self.requests is not None and self.failed >= self.requests:
            return False
        return self.seconds is None or now - self.started_at < self.seconds

    def scenario(self) -> Scenario:
        self.failed += 1
        headers = {}
        if self.retry_after is not None:
            headers["Retry-After"] = f"{self.retry_after:g}"
        if self.retry_after_ms is not None:
            headers["retry-after-ms"] = f"{self.retry_after_ms:g}"
        return Scenario(status=self.status, ttft=self.fail_delay, headers=headers)


@dataclass
class LLMRequest:
    body: dict[str, Any]
    started_at: float
    scenario: Scenario
    token_times: list[tuple[float, int]] = field(default_factory=list)
    first_token_at: float | None = None
    finished_at: float | None = None
    disconnected_at: float | None = None
    tokens_sent: int = 0
    tokens_after_disconnect: int = 0
    usage_sent: bool = False
    # Extras to the contract: HTTP status answered, and when the server dropped the connection on purpose.
    status: int = 200
    dropped_at: float | None = None
    reasoning_sent: int = 0
    first_reasoning_at: float | None = None
    keepalives_sent: int = 0
    client_port: int | None = None  # the connection it came on (a reused connection keeps its port)

    @property
    def text_sent(self) -> str:
        """The content handed to the client so far."""
        return "".join(self.scenario.token_list()[: self.tokens_sent])


class _ClientGone(Exception):
    """A write found the client connection closed."""


def _error_payload(status: int, message: str, type_: str, code: str | None, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def default_error_body(status: int, model: str = "") -> dict[str, Any]:
    """OpenAI's error body for ``status`` (messages as the real API words them)."""
    if status == 400:
        return _error_payload(status, "Invalid request.", "invalid_request_error", None)
    if status == 401:
        return _error_payload(
            status,
            "Incorrect API key provided. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            "invalid_request_error",
            "invalid_api_key",
        )
    if status == 403:
        return _error_payload(
            status, "You are not allowed to sample from this model.", "invalid_request_error", None
        )
    if status == 404:
        return _error_payload(
            status,
            f"The model `{model}` does not exist or you do not have access to it.",
            "invalid_request_error",
            "model_not_found",
        )
    if status == 429:
        return _error_payload(
            status,
            f"Rate limit reached for {model or 'the model'} on requests per min (RPM): Limit 3, Used 3, "
            "Requested 1. Please try again in 20s.",
            "requests",
            "rate_limit_exceeded",
        )
    if status == 500:
        return _error_payload(
            status,
            "The server had an error while processing your request. Sorry about that!",
            "server_error",
            None,
        )
    if status in (502, 503):
        return _error_payload(status, "The server is overloaded or not ready yet.", "server_error", None)
    type_ = "server_error" if status >= 500 else "invalid_request_error"
    return _error_payload(status, f"Error {status}.", type_, None)


def _prompt_tokens(body: dict[str, Any]) -> int:
    """Deterministic stand-in for the tokenizer: 3 per message + word-ish tokens of the text, + 3 priming."""
    total = 3
    messages = body.get("messages")
    for message in messages if isinstance(messages, list) else []:
        if not isinstance(message, dict):
            continue
        total += 3
        content = message.get("content")
        if isinstance(content, str):
            total += len(tokenize(content))
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    total += len(tokenize(part["text"]))
    return total


def _has_images(body: dict[str, Any]) -> bool:
    messages = body.get("messages")
    return any(
        isinstance(part, dict) and part.get("type") == "image_url"
        for message in (messages if isinstance(messages, list) else [])
        if isinstance(message, dict) and isinstance(message.get("content"), list)
        for part in message["content"]
    )


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


# The C string encoder: a per-token json.dumps() builds a JSONEncoder each call, the bench's top cost.
_json_str: Callable[[str], str] = json.encoder.encode_basestring  # type: ignore[attr-defined]


class FakeLLM(LoopbackServer):
    """See the module docstring. Use ``async with FakeLLM() as fake:`` or ``start()`` / ``close()``."""

    api_key: str = "sk-fake"

    def __init__(self, *, default: Scenario | None = None, models: Sequence[str] = DEFAULT_MODELS) -> None:
        super().__init__()
        self.default = default or Scenario()
        self.models = list(models)
        self.responder: Callable[[dict[str, Any]], Scenario] | None = None
        # A model's context: requests whose prompt is longer get context_length_exceeded (no scenario used).
        self.context_limit: int | None = None
        self.requests: list[LLMRequest] = []
        self._queue: deque[Scenario] = deque()
        self.outage: Outage | None = None
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None
        self._handlers: set[asyncio.Task[Any]] = set()
        self._closing = False
        self._ticker = _Ticker()

    # ---- lifecycle -------------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            raise RuntimeError("FakeLLM not started")
        return self._base_url

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._list_models)
        app.router.add_get("/v1/models/{model}", self._get_model)
        app.router.add_route("*", "/{tail:.*}", self._unknown_route)
        # handler_cancellation: a client disconnect must stop generation immediately (see module doc).
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        # The bench opens up to 1,000 connections at once; the default backlog of 128 would drop SYNs.
        site = web.TCPSite(self._runner, "127.0.0.1", 0, backlog=4096)
        await site.start()
        port = self._runner.addresses[0][1]
        self._base_url = f"http://127.0.0.1:{port}/v1"
        log.debug("FakeLLM listening on %s", self._base_url)

    async def close(self) -> None:
        self._closing = True
        # Hanging streams would otherwise hold the runner's graceful shutdown for its full timeout.
        handlers = list(self._handlers)
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ---- test API --------------------------------------------------------------------------------------

    @property
    def active(self) -> int:
        """Chat requests still being served (streams in flight, including hanging ones)."""
        return len(self._handlers)

    def enqueue(self, scenario: Scenario) -> None:
        self._queue.append(scenario)

    def start_outage(self, outage: Outage) -> Outage:
        """Fail chat requests as ``outage`` says until it runs out or ``end_outage()``; returns it."""
        outage.started_at = time.monotonic()
        self.outage = outage
        return outage

    def end_outage(self) -> None:
        self.outage = None

    # ---- routes ----------------------------------------------------------------------------------------

    def _json(self, status: int, payload: dict[str, Any]) -> web.Response:
        return web.Response(
            status=status,
            text=_dumps(payload),
            content_type="application/json",
            headers={"x-request-id": f"req_{uuid.uuid4().hex}"},
        )

    def _authorized(self, request: web.Request) -> bool:
        return request.headers.get("Authorization", "") == f"Bearer {self.api_key}"

    async def _unknown_route(self, request: web.Request) -> web.Response:
        message = f"Invalid URL ({request.method} {request.path})"
        return self._json(404, _error_payload(404, message, "invalid_request_error", None))

    async def _list_models(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._json(401, default_error_body(401))
        return self._json(200, {"object": "list", "data": [self._model_obj(m) for m in self.models]})

    async def _get_model(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._json(401, default_error_body(401))
        model = request.match_info["model"]
        if model not in self.models:
            return self._json(404, default_error_body(404, model))
        return self._json(200, self._model_obj(model))

    @staticmethod
    def _model_obj(model: str) -> dict[str, Any]:
        return {"id": model, "object": "model", "created": 1_700_000_000, "owned_by": "streamcord-fake"}

    def _next_scenario(self, body: dict[str, Any]) -> Scenario:
        if self.outage is not None and self.outage.applies(str(body.get("model")), time.monotonic()):
            return self.outage.scenario()
        if self._queue:
            return self._queue.popleft()
        if self.responder is not None:
            return self.responder(body)
        return self.default

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        started_at = time.monotonic()
        if not self._authorized(request):
            return self._json(401, default_error_body(401))
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            message = "We could not parse the JSON body of your request."
            return self._json(400, _error_payload(400, message, "invalid_request_error", None))
        model = body.get("model")
        if model not in self.models:
            return self._json(404, default_error_body(404, str(model)))

        prompt_tokens = _prompt_tokens(body)
        if self.context_limit is not None and prompt_tokens > self.context_limit:
            scenario = Scenario(context_length_exceeded=True, prompt_tokens=prompt_tokens)
        else:
            scenario = self._next_scenario(body)
        peer = request.transport.get_extra_info("peername") if request.transport else None
        rec = LLMRequest(body=body, started_at=started_at, scenario=scenario, client_port=peer and peer[1])
        self.requests.append(rec)
        self._changed()
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            return await self._respond(request, rec)
        except asyncio.CancelledError:
            # Cancelled by aiohttp because the client went away (or by close(), which is not a disconnect).
            if not self._closing:
                self._mark_disconnected(rec)
            raise
        finally:
            self._handlers.discard(task)
            self._changed()

    def _mark_disconnected(self, rec: LLMRequest) -> None:
        if rec.disconnected_at is None and rec.finished_at is None and rec.dropped_at is None:
            rec.disconnected_at = time.monotonic()
            self._changed()

    async def _respond(self, request: web.Request, rec: LLMRequest) -> web.StreamResponse:
        scenario = rec.scenario
        model = str(rec.body["model"])
        if scenario.context_length_exceeded or scenario.status is not None:
            await _sleep_until(rec.started_at + scenario.ttft)
            return self._error_response(rec, model)
        if scenario.reject_images and _has_images(rec.body):
            rec.status, rec.finished_at = 400, time.monotonic()
            self._changed()
            message = f"{model} is not a multimodal model: image input is not supported."
            return self._json(400, _error_payload(400, message, "invalid_request_error", None))
        if rec.body.get("stream"):
            return await self._stream(request, rec, model)
        return await self._complete(request, rec, model)

    def _error_response(self, rec: LLMRequest, model: str) -> web.Response:
        scenario = rec.scenario
        if scenario.context_length_exceeded:
            status = 400
            prompt = scenario.prompt_tokens if scenario.prompt_tokens is not None else CONTEXT_LENGTH + 1
            default = _error_payload(
                400,
                f"This model's maximum context length is {CONTEXT_LENGTH} tokens. However, your messages "
                f"resulted in {prompt} tokens. Please reduce the length of the messages.",
                "invalid_request_error",
                "context_length_exceeded",
                param="messages",
            )
        else:
            assert scenario.status is not None
            status = scenario.status
            default = default_error_body(status, model)
        rec.status = status
        rec.finished_at = time.monotonic()
        self._changed()
        response = self._json(status, scenario.error_body or default)
        response.headers.update(scenario.headers or {})
        return response

    def _usage(self, rec: LLMRequest) -> dict[str, Any]:
        prompt = rec.scenario.prompt_tokens
        if prompt is None:
            prompt = _prompt_tokens(rec.body)
        # Hidden reasoning the scenario declares, else the reasoning chunks it streamed.
        reasoning = rec.scenario.reasoning_tokens
        if reasoning is None and rec.reasoning_sent:
            reasoning = rec.reasoning_sent
        completion = rec.tokens_sent + (reasoning or 0)
        usage: dict[str, Any] = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
        if reasoning is not None:
            usage["completion_tokens_details"] = {"reasoning_tokens": reasoning}
        return usage

    def _record_tokens(self, rec: LLMRequest, tokens: list[str], at: float) -> None:
        if rec.disconnected_at is not None:
            # Self-check surfaced to tests: a dead client must never get more tokens.
            rec.tokens_after_disconnect += len(tokens)
        chars = rec.token_times[-1][1] if rec.token_times else 0
        for token in tokens:
            chars += len(token)
            rec.token_times.append((at, chars))
        if rec.first_token_at is None and tokens:
            rec.first_token_at = at
        rec.tokens_sent += len(tokens)
        self._changed()

    async def _stream(self, request: web.Request, rec: LLMRequest, model: str) -> web.StreamResponse:
        scenario = rec.scenario
        tokens = scenario.token_list()
        finish_reason = scenario.finish_reason
        limit = rec.body.get("max_tokens")
        if scenario.obey_max_tokens and isinstance(limit, int) and len(tokens) > limit:
            tokens, finish_reason = tokens[:limit], "length"
        options = rec.body.get("stream_options")
        include_usage = isinstance(options, dict) and bool(options.get("include_usage"))

        # Every chunk shares this prefix/suffix; only the choices differ, so building one is a format call.
        head = (
            f'data: {{"id":"chatcmpl-{uuid.uuid4().hex[:24]}","object":"chat.completion.chunk",'
            f'"created":{int(time.time())},"model":{_dumps(model)},'
            f'"system_fingerprint":"{SYSTEM_FINGERPRINT}","choices":'
        )
        tail = ',"usage":null}\n\n' if include_usage else "}\n\n"

        def delta_chunk(delta: str, finish: str | None = None) -> str:
            finish_json = "null" if finish is None else _dumps(finish)
            return (
                f'{head}[{{"index":0,"delta":{delta},"logprobs":null,"finish_reason":{finish_json}}}]{tail}'
            )

        resp = web.StreamResponse(
            status=200,
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
                "x-request-id": f"req_{uuid.uuid4().hex}",
            },
        )
        await resp.prepare(request)

        stop_at, ending = _plan(scenario, len(tokens))
        if scenario.endless:
            assert scenario.tokens_per_second, "an endless stream needs tokens_per_second"
            stop_at, ending = sys.maxsize, "complete"
        first_due = rec.started_at + scenario.ttft
        tps = scenario.tokens_per_second
        pending = [delta_chunk('{"role":"assistant","content":""}')]
        sent = 0
        try:
            await _sleep_until(first_due)
            if scenario.keepalive_only:
                await self._keepalives(resp, rec)
            for i, thought in enumerate(scenario.reasoning or ()):
                if tps:
                    await self._ticker.sleep_until(first_due + i / tps)
                pending.append(delta_chunk(f'{{"{scenario.reasoning_field}":{_json_str(thought)}}}'))
                await self._write(resp, "".join(pending))
                pending = []
                rec.reasoning_sent += 1
                if rec.first_reasoning_at is None:
                    rec.first_reasoning_at = time.monotonic()
                self._changed()
            if tps:
                first_due += len(scenario.reasoning or ()) / tps
            while sent < stop_at:
                if tps:
                    await self._ticker.sleep_until(first_due + sent / tps)
                    # Coalesce every token already due (the loop ran late) into one write.
                    due = int((time.monotonic() - first_due) * tps) + 1
                    upto = min(stop_at, max(due, sent + 1))
                else:
                    upto = stop_at
                if scenario.endless:
                    batch = [tokens[i % len(tokens)] for i in range(sent, upto)]
                else:
                    batch = tokens[sent:upto]
                pending.extend(delta_chunk(f'{{"content":{_json_str(t)}}}') for t in batch)
                await self._write(resp, "".join(pending))
                self._record_tokens(rec, batch, time.monotonic())
                pending = []
                sent = upto

            if ending != "complete":
                if pending:  # N=0: the role chunk still goes out, as when a real stream stalls early
                    await self._write(resp, "".join(pending))
                if ending == "drop":
                    return self._drop(request, rec, resp)
                if ending in ("end", "error"):
                    if ending == "error":
                        error = {"message": scenario.error_message, "type": "server_error", "code": None}
                        await self._write(resp, f"data: {_dumps({'error': error})}\n\n")
                    await _end(resp)
                    return resp
                await asyncio.Event().wait()  # hang until the client leaves (handler cancelled) or close()

            pending.append(delta_chunk("{}", finish_reason))
            if include_usage and scenario.send_usage:
                pending.append(f'{head}[],"usage":{_dumps(self._usage(rec))}}}\n\n')
            pending.append("data: [DONE]\n\n")
            await self._write(resp, "".join(pending))
            await _end(resp)
        except _ClientGone:
            self._mark_disconnected(rec)
            return resp
        rec.usage_sent = include_usage and scenario.send_usage
        rec.finished_at = time.monotonic()
        self._changed()
        return resp

    async def _keepalives(self, resp: web.StreamResponse, rec: LLMRequest) -> None:
        """Comment lines only, until the client leaves (or close())."""
        while True:
            await self._write(resp, ": PROCESSING\n\n")
            rec.keepalives_sent += 1
            self._changed()
            await asyncio.sleep(rec.scenario.keepalive_interval)

    def _drop(self, request: web.Request, rec: LLMRequest, resp: web.StreamResponse) -> web.StreamResponse:
        # close(), not abort(): buffered chunks still reach the client, then the body ends without the
        # terminating chunk, which the client reports as a protocol error. Deterministic for tests.
        rec.dropped_at = time.monotonic()
        if request.transport is not None:
            request.transport.close()
        log.debug("FakeLLM dropped the connection after %d tokens", rec.tokens_sent)
        self._changed()
        # aiohttp then fails to finish `resp` on the closed transport and treats it as a client disconnect.
        return resp

    async def _write(self, resp: web.StreamResponse, data: str) -> None:
        try:
            await resp.write(data.encode())
        except ConnectionError as exc:
            raise _ClientGone from exc

    async def _complete(self, request: web.Request, rec: LLMRequest, model: str) -> web.StreamResponse:
        scenario = rec.scenario
        tokens = scenario.token_list()
        stop_at, ending = _plan(scenario, len(tokens))
        generation = stop_at / scenario.tokens_per_second if scenario.tokens_per_second else 0.0
        await _sleep_until(rec.started_at + scenario.ttft + generation)
        if ending == "drop":
            return self._drop(request, rec, web.Response(status=200))
        if ending == "hang":
            await asyncio.Event().wait()
        self._record_tokens(rec, tokens, time.monotonic())
        payload = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(tokens), "refusal": None},
                    "logprobs": None,
                    "finish_reason": scenario.finish_reason,
                }
            ],
            "usage": self._usage(rec),
        }
        rec.usage_sent = True
        rec.finished_at = time.monotonic()
        self._changed()
        return self._json(200, payload)


def _plan(scenario: Scenario, n_tokens: int) -> tuple[int, str]:
    """Tokens to send and how the response ends: "complete", or the early ending with the smallest N."""
    early = [
        (n, ending)
        for n, ending in (
            (scenario.drop_after, "drop"),
            (scenario.hang_after, "hang"),
            (scenario.end_after, "end"),
            (scenario.error_after, "error"),
        )
        if n is not None
    ]
    if not early:
        return n_tokens, "complete"
    n, ending = min(early, key=lambda item: item[0])
    return min(n_tokens, max(0, n)), ending


async def _end(resp: web.StreamResponse) -> None:
    """The body's last chunk; everything was sent, so a client that already left (after [DONE]) lost
    nothing."""
    try:
        await resp.write_eof()
    except ConnectionError:
        pass


async def _sleep_until(deadline: float) -> None:
    """Sleep to an absolute monotonic deadline, so per-token pacing never accumulates drift."""
    delay = deadline - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


class _Ticker:
    """Wakes paced streams on a shared TICK grid: one timer per tick for all streams instead of one per token
    (asyncio.sleep's TimerHandle and heap work were a large share of the bench's cost)."""

    def __init__(self) -> None:
        self._slots: dict[int, list[asyncio.Future[None]]] = {}

    async def sleep_until(self, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        if deadline <= loop.time():
            return
        slot = math.ceil(deadline / TICK)
        waiters = self._slots.get(slot)
        if waiters is None:
            waiters = self._slots[slot] = []
            loop.call_at(slot * TICK, self._fire, slot)
        future: asyncio.Future[None] = loop.create_future()
        waiters.append(future)  # a future per waiter, so a cancelled stream cancels only itself
        await future

    def _fire(self, slot: int) -> None:
        for future in self._slots.pop(slot, ()):
            if not future.done():
                future.set_result(None)
