"""The REST server under /api/v10: route matching, auth, request records, outages, rate limits, errors.

Handlers live by resource in rest_app.py, rest_channels.py and rest_interactions.py; each is called as
``handler(request, body, **path_params)`` and returns a JSON payload, ``(status, payload)``, or None (204).
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import unquote

from aiohttp import BodyPartReader, web

from fakes.discord.errors import ApiError
from fakes.discord.model import RequestRecord
from fakes.discord.ratelimits import RateLimiter, is_interaction_route
from fakes.discord.state import State

log = logging.getLogger(__name__)

Handler = Callable[..., Awaitable[Any]]
Route = tuple[str, str, Handler]  # method, path template ("/channels/{channel_id}"), handler


class RestServer:
    def __init__(
        self,
        state: State,
        limiter: RateLimiter,
        routes: Iterable[Route],
        changed: Callable[[], None],
        *,
        rate_limits: bool,
        latency: float,
    ) -> None:
        self._state = state
        self._limiter = limiter
        self._changed = changed
        self.rate_limits = rate_limits
        self.latency = latency  # seconds added to every request
        self.requests: list[RequestRecord] = []
        self.unknown_routes: list[str] = []
        self._in_flight = 0
        self.peak_in_flight = 0  # most requests being answered at once (each holds a client connection)
        # [method, path substring, status, remaining count, Discord error code, message]
        self._outages: list[list[Any]] = []
        self._holds: list[tuple[str, str, asyncio.Event]] = []  # (method, path substring, release)
        # Routes indexed by (method, number of segments); templates are matched segment by segment.
        self._index: dict[tuple[str, int], list[tuple[list[str], str, Handler]]] = collections.defaultdict(
            list
        )
        for method, template, handler in routes:
            segments = template.strip("/").split("/")
            self._index[(method, len(segments))].append((segments, template, handler))

    def fail_requests(
        self, method: str, path_contains: str, status: int, count: int, *, code: int = 0, message: str = ""
    ) -> None:
        """Answer the next `count` matching requests with `status` (e.g. 503, as during a Discord outage), or
        with a Discord error `code` (e.g. 403 50013 Missing Permissions, 400 50083 thread archived)."""
        text = message or ("Service Unavailable" if status >= 500 else "Refused")
        self._outages.append([method, path_contains, status, count, code, text])

    def hold_requests(self, method: str, path_contains: str) -> asyncio.Event:
        """Matching requests wait (after being recorded) until the returned event is set."""
        release = asyncio.Event()
        self._holds.append((method, path_contains, release))
        return release

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self._in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self._in_flight)
        try:
            return await self._answer(request)
        finally:
            self._in_flight -= 1

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        at = time.monotonic()
        path = request.rel_url.raw_path.split("/api/v10", 1)[1] or "/"
        method = request.method
        match = self._match(method, path)
        body_error: ApiError | None = None
        try:
            body = await _read_body(request)
        except ApiError as err:
            body, body_error = None, err
        template, handler, params = match if match else ("unknown", None, {})
        name = handler.__name__ if handler is not None else ""
        uses = self._limiter.uses(method, template, name, params)
        record = RequestRecord(
            at=at, method=method, path=path, bucket_key=uses[-1].key if uses else "", json=body
        )
        self.requests.append(record)
        if self.latency:
            await asyncio.sleep(self.latency)
        for held_method, held_path, release in self._holds:
            if held_method == method and held_path in path:
                await release.wait()
        status, payload, headers = 200, None, {"Via": "1.1 google"}
        try:
            if handler is None:
                log.warning("fake discord: unknown route %s %s", method, path)
                self.unknown_routes.append(f"{method} {path}")
                raise ApiError(404, 0, "404: Not Found")
            if (
                not is_interaction_route(name)
                and request.headers.get("Authorization") != f"Bot {self._state.token}"
            ):
                raise ApiError(401, 0, "401: Unauthorized")
            if body_error is not None:
                raise body_error
            self._outage(method, path)
            limited = self._limiter.take(uses, headers) if self.rate_limits else None
            if limited is not None:
                status, payload = 429, limited
            else:
                result = await handler(request, body, **params)
                if isinstance(result, tuple):
                    status, payload = result
                else:
                    payload = result
                    status = 204 if result is None else 200
        except ApiError as err:
            status, payload = err.status, err.body()
        except (KeyError, ValueError, TypeError) as err:
            log.warning("fake discord: bad request %s %s: %r", method, path, err)
            status, payload = 400, {"code": 50035, "message": "Invalid Form Body", "errors": {}}
        record.status = status
        record.headers = {k: v for k, v in headers.items() if k.lower().startswith(("x-ratelimit", "retry"))}
        self._changed()
        if payload is None:
            return web.Response(status=status, headers=headers)
        # discord.py only JSON-decodes an exact "application/json" content type (no charset suffix).
        headers["Content-Type"] = "application/json"
        return web.Response(body=json.dumps(payload).encode(), status=status, headers=headers)

    def _match(self, method: str, path: str) -> tuple[str, Handler, dict[str, str]] | None:
        segments = [unquote(s) for s in path.strip("/").split("/")]
        # Static segments win over placeholders (e.g. .../@me vs .../{user_id}).
        best: tuple[int, str, Handler, dict[str, str]] | None = None
        for pattern, template, handler in self._index.get((method, len(segments)), []):
            params: dict[str, str] = {}
            statics = 0
            for want, got in zip(pattern, segments, strict=True):
                if want.startswith("{"):
                    params[want[1:-1]] = got
                elif want == got:
                    statics += 1
                else:
                    break
            else:
                if best is None or statics > best[0]:
                    best = (statics, template, handler, params)
        return None if best is None else (best[1], best[2], best[3])

    def _outage(self, method: str, path: str) -> None:
        for outage in self._outages:
            if outage[3] > 0 and outage[0] == method and outage[1] in path:
                outage[3] -= 1
                raise ApiError(outage[2], outage[4], f"{outage[2]}: {outage[5]}")


async def _read_body(request: web.Request) -> Any:
    """JSON, or a multipart form's payload_json; the bytes of each file part ("files[N]") go into the
    message's attachment N as "_bytes" (with "_content_type")."""
    if not request.can_read_body:
        return None
    if request.content_type.startswith("multipart/"):
        payload: Any = None
        files: dict[str, tuple[bytes, str]] = {}
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if isinstance(part, BodyPartReader) and part.name == "payload_json":
                payload = json.loads(await part.text())
            elif isinstance(part, BodyPartReader) and part.name and part.name.startswith("files["):
                content_type = part.headers.get("Content-Type", "application/octet-stream")
                files[part.name[6:-1]] = (bytes(await part.read()), content_type)
            else:
                await part.release()
        # An interaction callback carries its message (and attachments) under "data".
        message = (payload or {}).get("data") if isinstance((payload or {}).get("data"), dict) else payload
        for attachment in (message or {}).get("attachments") or []:
            if str(attachment.get("id")) in files:
                attachment["_bytes"], attachment["_content_type"] = files[str(attachment["id"])]
        return payload
    raw = await request.read()
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        raise ApiError(400, 50109, "The request body contains invalid JSON.") from None
