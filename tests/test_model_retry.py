"""The retry policy and failure classification (pure)."""

from __future__ import annotations

import email.utils

import httpx2
import openai
import pytest

from bot.model_retry import Failure, FailureKind, RetryPolicy, classify, refuses_images, retry_after_seconds

NOW = 1_700_000_000.0
_REQUEST = httpx2.Request("POST", "http://model.test/v1/chat/completions")


def status_error(status: int, headers: dict[str, str] | None = None, code: str | None = None) -> Exception:
    response = httpx2.Response(status, headers=headers or {}, request=_REQUEST)
    return openai.APIStatusError("x", response=response, body={"error": {"message": "x", "code": code}})


@pytest.mark.parametrize(
    ("exc", "kind", "transient", "falls_back"),
    [
        (status_error(429), FailureKind.RATE_LIMITED, True, True),
        (status_error(500), FailureKind.SERVER_ERROR, True, True),
        (status_error(503), FailureKind.SERVER_ERROR, True, True),
        (status_error(408), FailureKind.TIMEOUT, True, True),
        (status_error(401), FailureKind.AUTH, False, False),
        (status_error(403), FailureKind.AUTH, False, False),
        (status_error(404), FailureKind.MODEL_NOT_FOUND, False, True),
        (status_error(400, code="context_length_exceeded"), FailureKind.CONTEXT_LENGTH, False, False),
        (status_error(400), FailureKind.BAD_REQUEST, False, False),
        (openai.APITimeoutError(request=_REQUEST), FailureKind.TIMEOUT, True, True),
        (openai.APIConnectionError(request=_REQUEST), FailureKind.CONNECTION, True, True),
        (httpx2.RemoteProtocolError("gone"), FailureKind.CONNECTION, True, True),
        (openai.APIError("boom", _REQUEST, body={"message": "boom"}), FailureKind.STREAM_ERROR, True, True),
        (ValueError("bug"), FailureKind.OTHER, False, False),
    ],
)
def test_classify(exc: Exception, kind: FailureKind, transient: bool, falls_back: bool) -> None:
    failure = classify(exc, now=NOW)
    assert failure.kind is kind
    assert failure.transient is transient
    assert failure.falls_back is falls_back


def test_classify_reads_status_and_retry_after() -> None:
    failure = classify(status_error(429, {"retry-after": "7"}), now=NOW)
    assert failure == Failure(FailureKind.RATE_LIMITED, 429, 7.0)


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({}, None),
        ({"retry-after": "5"}, 5.0),
        ({"retry-after": "0.5"}, 0.5),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after": email.utils.formatdate(NOW + 12, usegmt=True)}, 12.0),
        ({"retry-after": email.utils.formatdate(NOW - 30, usegmt=True)}, 0.0),
        ({"retry-after": "soon"}, None),
        ({"retry-after": "-3"}, None),
        ({"retry-after": "86400"}, 86400.0),  # past any budget: the policy gives up (below)
        ({"retry-after-ms": "900000"}, 900.0),
    ],
)
def test_retry_after(headers: dict[str, str], seconds: float | None) -> None:
    assert retry_after_seconds(headers, now=NOW) == seconds


SERVER = Failure(FailureKind.SERVER_ERROR, 500)


def test_delays_double_up_to_the_retry_count() -> None:
    policy = RetryPolicy(budget=20, max_retries=3, base_delay=1)
    assert [policy.delay(SERVER, n, spent=0, attempt_took=0) for n in (1, 2, 3, 4)] == [1, 2, 4, None]


def test_retry_after_beats_the_backoff() -> None:
    policy = RetryPolicy(budget=20, max_retries=2)
    failure = Failure(FailureKind.RATE_LIMITED, 429, retry_after=5)
    assert policy.delay(failure, 1, spent=0, attempt_took=0.1) == 5


def test_a_retry_that_cannot_finish_inside_the_budget_is_not_started() -> None:
    policy = RetryPolicy(budget=20, max_retries=5, base_delay=1)
    # A gateway that takes 5 s to fail: 1 s + 5 s fits, 2 s more + 5 s fits, 4 s + 5 s after 13 s does not.
    assert policy.delay(SERVER, 1, spent=0, attempt_took=5) == 1
    assert policy.delay(SERVER, 2, spent=6, attempt_took=5) == 2
    assert policy.delay(SERVER, 3, spent=13, attempt_took=5) is None
    long_wait = Failure(FailureKind.RATE_LIMITED, 429, retry_after=30)
    assert policy.delay(long_wait, 1, spent=0, attempt_took=0) is None


def test_a_retry_after_of_hours_gives_up_instead_of_retrying_at_once() -> None:
    failure = classify(status_error(429, {"retry-after": "7200"}), now=NOW)
    assert failure.retry_after == 7200
    assert RetryPolicy(budget=20, max_retries=2).delay(failure, 1, spent=0, attempt_took=0) is None


@pytest.mark.parametrize(
    "kind",
    [FailureKind.AUTH, FailureKind.MODEL_NOT_FOUND, FailureKind.CONTEXT_LENGTH, FailureKind.BAD_REQUEST],
)
def test_errors_retrying_cannot_fix_are_never_retried(kind: FailureKind) -> None:
    assert RetryPolicy(budget=600, max_retries=10).delay(Failure(kind), 1, spent=0, attempt_took=0) is None


def bad_request(message: str, code: str | None = None) -> openai.BadRequestError:
    response = httpx2.Response(400, request=_REQUEST)
    return openai.BadRequestError(message, response=response, body={"message": message, "code": code})


@pytest.mark.parametrize(
    ("exc", "about_images"),
    [
        (bad_request("fake-model is not a multimodal model: image input is not supported."), True),
        (bad_request("Invalid content type. image_url is only supported by certain models."), True),
        (bad_request("This model does not support vision."), True),
        (bad_request("This model's maximum context length is 8192 tokens", "context_length_exceeded"), False),
        (bad_request("temperature must be at most 2"), False),
        (status_error(500), False),
    ],
)
def test_only_a_bad_request_about_images_is_an_image_refusal(exc: Exception, about_images: bool) -> None:
    assert refuses_images(exc) is about_images
