"""Why a model request failed, and whether (and when) to try it again within a time budget (pure).

The bot retries itself, not the openai client, so every retry can be shown to the user as it happens."""

from __future__ import annotations

import email.utils
import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

import httpx2
import openai


class FailureKind(StrEnum):
    RATE_LIMITED = "rate limited"  # 429
    SERVER_ERROR = "server error"  # 5xx (and 409, which OpenAI documents as retryable)
    TIMEOUT = "timeout"
    CONNECTION = "connection"  # unreachable, or dropped before any text
    STREAM_ERROR = "stream error"  # an error event in the stream before any text
    AUTH = "auth"  # 401, 403
    MODEL_NOT_FOUND = "model not found"  # 404
    CONTEXT_LENGTH = "context length"  # 400 context_length_exceeded
    BAD_REQUEST = "bad request"  # any other 4xx
    OTHER = "other"


# The model server is struggling: worth another try, a fallback, and a strike against its circuit.
_TRANSIENT = frozenset(
    {
        FailureKind.RATE_LIMITED,
        FailureKind.SERVER_ERROR,
        FailureKind.TIMEOUT,
        FailureKind.CONNECTION,
        FailureKind.STREAM_ERROR,
    }
)


@dataclass(frozen=True)
class Failure:
    kind: FailureKind
    status: int | None = None
    retry_after: float | None = None  # seconds the server asked us to wait

    @property
    def transient(self) -> bool:
        """Retrying may fix it, and it counts against the model server's circuit."""
        return self.kind in _TRANSIENT

    @property
    def falls_back(self) -> bool:
        """Another model may answer instead: a missing model too, not a bad key or a too-long prompt."""
        return self.transient or self.kind is FailureKind.MODEL_NOT_FOUND


def classify(exc: BaseException, *, now: float) -> Failure:
    """The failure behind an exception from the openai client (``now`` is wall-clock time, for HTTP dates)."""
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        retry_after = retry_after_seconds(exc.response.headers, now=now)
        return Failure(_status_kind(exc, status), status, retry_after)
    if isinstance(exc, openai.APITimeoutError | httpx2.TimeoutException | TimeoutError):
        return Failure(FailureKind.TIMEOUT)
    if isinstance(exc, openai.APIConnectionError | httpx2.HTTPError):
        return Failure(FailureKind.CONNECTION)
    if isinstance(exc, openai.APIError):  # what remains is an error event inside the stream
        return Failure(FailureKind.STREAM_ERROR)
    return Failure(FailureKind.OTHER)


def _status_kind(exc: openai.APIStatusError, status: int) -> FailureKind:
    if status == 429:
        return FailureKind.RATE_LIMITED
    if status == 408:
        return FailureKind.TIMEOUT
    if status >= 500 or status == 409:
        return FailureKind.SERVER_ERROR
    if status in (401, 403):
        return FailureKind.AUTH
    if status == 404:
        return FailureKind.MODEL_NOT_FOUND
    if status == 400 and error_code(exc) == "context_length_exceeded":
        return FailureKind.CONTEXT_LENGTH
    return FailureKind.BAD_REQUEST


def error_code(exc: openai.APIStatusError) -> str | None:
    """OpenAI's ``error.code`` (e.g. ``context_length_exceeded``), wherever the server put it."""
    body = exc.body
    inner = body.get("error", body) if isinstance(body, dict) else None
    code = inner.get("code") if isinstance(inner, dict) else getattr(exc, "code", None)
    return code if isinstance(code, str) else None


_IMAGE_WORDS = ("image", "vision", "multimodal", "multi-modal")


def refuses_images(exc: BaseException) -> bool:
    """A 400 saying the model takes no images: not a too-long prompt, nor any other bad request."""
    if not isinstance(exc, openai.BadRequestError) or error_code(exc) == "context_length_exceeded":
        return False
    said = f"{exc.message} {exc.body}".lower()
    return any(word in said for word in _IMAGE_WORDS)


def retry_after_seconds(headers: Mapping[str, str], *, now: float) -> float | None:
    """``retry-after-ms`` (OpenAI), else ``retry-after`` as seconds or an HTTP date; None if absent or odd.
    A long wait is returned as it is: the retry policy gives up on one past its budget."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        raw = headers.get(name)
        if raw is None:
            continue
        try:
            value = float(raw) * scale
        except ValueError:
            continue  # not a number: maybe an HTTP date
        return value if math.isfinite(value) and value >= 0 else None
    raw = headers.get("retry-after")
    if raw:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        value = when.timestamp() - now
        return max(value, 0.0) if math.isfinite(value) else None
    return None


@dataclass(frozen=True)
class RetryPolicy:
    """At most ``max_retries`` retries, all of which must fit in ``budget`` seconds counted from the first
    failure. Delays double from ``base_delay`` unless the server says how long to wait."""

    budget: float = 20.0
    max_retries: int = 2
    base_delay: float = 1.0
    max_delay: float = 8.0

    def delay(self, failure: Failure, retry: int, spent: float, attempt_took: float) -> float | None:
        """Seconds to wait before retry number ``retry`` (1-based), or None to give up. ``spent`` is the time
        since the first failure; ``attempt_took`` how long the last attempt took to fail, our estimate of the
        next: a retry that could not finish inside the budget is not started."""
        if not failure.transient or retry > self.max_retries:
            return None
        if failure.retry_after is not None:
            wait = failure.retry_after
        else:
            wait = min(self.base_delay * 2 ** (retry - 1), self.max_delay)
        if spent + wait + attempt_took > self.budget:
            return None
        return wait
