"""The metrics server on loopback: Prometheus text at /metrics, /healthz from the health check."""

from collections.abc import AsyncIterator

import aiohttp
import pytest

from bot.db import Database
from bot.health import problem
from bot.metrics import Metrics, serve
from bot.streaming.stream import Requester
from tests.e2e import samples


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_scrape_shows_what_the_observer_saw(http: aiohttp.ClientSession) -> None:
    metrics = Metrics()
    metrics.count_streams(lambda: 3, lambda: 1)
    metrics.answer_finished(Requester(1, 2, 3), "completed", 100, 20)
    metrics.answer_finished(Requester(1, 2, 3), "stopped", 5, 1)
    metrics.first_text(0.3)
    metrics.display_lag(1.2)
    metrics.model_error("timeout")
    metrics.discord_response(429)
    metrics.discord_response(None)

    async def healthy() -> str | None:
        return None

    async with serve(metrics, healthy, "127.0.0.1", 0) as port:
        async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain")
            seen = samples(await response.text())
        async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
            assert (response.status, await response.text()) == (200, "ok\n")

    assert seen[("streamcord_answers_total", (("outcome", "completed"),))] == 1
    assert seen[("streamcord_answers_total", (("outcome", "stopped"),))] == 1
    assert seen[("streamcord_tokens_total", (("direction", "prompt"),))] == 105
    assert seen[("streamcord_tokens_total", (("direction", "completion"),))] == 21
    assert seen[("streamcord_answers_in_flight", ())] == 3
    assert seen[("streamcord_answers_queued", ())] == 1
    assert seen[("streamcord_first_text_seconds_count", ())] == 1
    assert seen[("streamcord_first_text_seconds_bucket", (("le", "0.5"),))] == 1
    assert seen[("streamcord_display_lag_seconds_bucket", (("le", "1.0"),))] == 0
    assert seen[("streamcord_display_lag_seconds_count", ())] == 1
    assert seen[("streamcord_model_errors_total", (("kind", "timeout"),))] == 1
    assert seen[("streamcord_discord_requests_total", (("status", "429"),))] == 1
    assert seen[("streamcord_discord_requests_total", (("status", "error"),))] == 1
    assert ("streamcord_event_loop_lag_seconds", ()) in seen
    assert all(name.startswith("streamcord_") for name, _ in seen)


async def test_healthz_is_503_with_the_reason(http: aiohttp.ClientSession, db: Database) -> None:
    connected = False

    async def health() -> str | None:
        return await problem(lambda: connected, db)

    async with serve(Metrics(), health, "127.0.0.1", 0) as port:
        async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
            assert (response.status, await response.text()) == (503, "gateway disconnected\n")
        connected = True
        async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
            assert response.status == 200
        await db.close()
        async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
            assert response.status == 503
            assert (await response.text()).startswith("database error: ")
