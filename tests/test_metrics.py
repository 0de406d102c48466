"""The metrics server on loopback: Prometheus text at /metrics, /healthz from the health check."""

from collections.abc import AsyncIterator

import aiohttp
import pytest

from bot.circuit import CircuitState, CircuitStatus
from bot.db import Database
from bot.health import HealthReport, check
from bot.metrics import Metrics, serve
from bot.streaming.observer import FinishedAnswer
from bot.streaming.stream import Requester
from tests.e2e import samples


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_scrape_shows_what_the_observer_saw(http: aiohttp.ClientSession) -> None:
    metrics = Metrics()
    metrics.count_streams(lambda: 3, lambda: 1)
    metrics.answer_finished(FinishedAnswer(Requester(1, 2, 3), "completed", 100, 20, "m"))
    metrics.answer_finished(FinishedAnswer(Requester(1, 2, 3), "stopped", 5, 1, "m"))
    metrics.first_text(0.3)
    metrics.display_lag(1.2)
    metrics.model_error("timeout")
    metrics.discord_response(429)
    metrics.discord_response(None)

    async def healthy() -> HealthReport:
        return HealthReport()

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

    async def health() -> HealthReport:
        return await check(lambda: None if connected else "gateway disconnected", db, list)

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


async def test_open_circuits_are_listed_and_only_all_of_them_fail_the_check(db: Database) -> None:
    def circuit(name: str, state: CircuitState) -> CircuitStatus:
        return CircuitStatus(
            name, state, failures=5, retry_in=12.4 if state is CircuitState.OPEN else 0, cool_down=30
        )

    main, fallback = circuit("m1", CircuitState.OPEN), circuit("m2", CircuitState.CLOSED)
    assert await check(lambda: None, db, list) == HealthReport()
    one_down = await check(lambda: None, db, lambda: [main, fallback])
    assert (one_down.status, one_down.text) == (200, "ok\nmodel circuit open: m1 (next probe in 13 s)\n")
    probing = circuit("m2", CircuitState.PROBING)
    all_down = await check(lambda: None, db, lambda: [main, probing])
    assert all_down.status == 503
    assert all_down.text.splitlines() == [
        "every model circuit is open",
        "model circuit open: m1 (next probe in 13 s)",
        "model circuit probing: m2 (one probe under way)",
    ]
