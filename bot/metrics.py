"""Prometheus metrics (every name prefixed streamcord_) and the small HTTP server that serves them at
/metrics, with /healthz, on METRICS_HOST:METRICS_PORT."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from types import SimpleNamespace

import aiohttp
from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from bot.circuit import CircuitState, CircuitStatus
from bot.health import HealthReport
from bot.streaming.observer import FinishedAnswer, StreamObserver

log = logging.getLogger(__name__)

LOOP_LAG_INTERVAL = 0.5
# Seconds: first text is often under a second; display lag is about the 1-s edit spacing under load.
_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)
Health = Callable[[], Awaitable[HealthReport]]


class Metrics(StreamObserver):
    """The bot's metrics on a registry of its own (two bots in one test process never collide)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.answers = Counter("streamcord_answers", "Answers by how they ended", ["outcome"], registry=r)
        self.in_flight = Gauge("streamcord_answers_in_flight", "Answers being generated now", registry=r)
        self.queued = Gauge("streamcord_answers_queued", "Answers waiting for a free slot", registry=r)
        self.tokens = Counter("streamcord_tokens", "Tokens counted", ["direction"], registry=r)
        self.first_text_seconds = Histogram(
            "streamcord_first_text_seconds",
            "Request to first visible text",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.display_lag_seconds = Histogram(
            "streamcord_display_lag_seconds",
            "Text from the model to Discord showing it",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.discord_requests = Counter(
            "streamcord_discord_requests", "Discord REST responses (429s included)", ["status"], registry=r
        )
        self.model_errors = Counter("streamcord_model_errors", "Failed model requests", ["kind"], registry=r)
        self.loop_lag = Gauge(
            "streamcord_event_loop_lag_seconds", "How late the event loop ran a timer", registry=r
        )

    def count_streams(self, in_flight: Callable[[], int], queued: Callable[[], int]) -> None:
        """Read the gauges from the stream manager at scrape time."""
        self.in_flight.set_function(in_flight)
        self.queued.set_function(queued)

    def watch_circuits(self, circuits: Callable[[], list[CircuitStatus]]) -> None:
        """streamcord_model_circuit_open{circuit}, read from the model caller at scrape time."""
        self.registry.register(_CircuitGauge(circuits))

    # --- StreamObserver ---------------------------------------------------------------------------------

    def answer_finished(self, answer: FinishedAnswer) -> None:
        self.answers.labels(answer.outcome).inc()
        self.tokens.labels("prompt").inc(answer.prompt_tokens)
        self.tokens.labels("completion").inc(answer.completion_tokens)

    def first_text(self, seconds: float) -> None:
        self.first_text_seconds.observe(seconds)

    def display_lag(self, seconds: float) -> None:
        self.display_lag_seconds.observe(seconds)

    def model_error(self, kind: str) -> None:
        self.model_errors.labels(kind).inc()

    def discord_response(self, status: int | None) -> None:
        self.discord_requests.labels("error" if status is None else str(status)).inc()

    def trace_into(self, trace: aiohttp.TraceConfig) -> aiohttp.TraceConfig:
        """Count the responses the bot's aiohttp session gets (the pacer's trace), next to its own hooks."""

        # The gateway's websocket upgrade goes through the same session; it is no REST request.
        async def on_end(_: object, __: SimpleNamespace, params: aiohttp.TraceRequestEndParams) -> None:
            if "Upgrade" not in params.headers:
                self.discord_response(params.response.status)

        async def on_error(
            _: object, __: SimpleNamespace, params: aiohttp.TraceRequestExceptionParams
        ) -> None:
            if "Upgrade" not in params.headers:
                self.discord_response(None)

        trace.on_request_end.append(on_end)
        trace.on_request_exception.append(on_error)
        return trace

    async def watch_loop_lag(self) -> None:
        """Runs until cancelled: a timer's lateness is how long other work held the loop."""
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + LOOP_LAG_INTERVAL
            await asyncio.sleep(LOOP_LAG_INTERVAL)
            self.loop_lag.set(max(0.0, loop.time() - due))


class _CircuitGauge(Collector):
    def __init__(self, circuits: Callable[[], list[CircuitStatus]]) -> None:
        self._circuits = circuits

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauge = GaugeMetricFamily(
            "streamcord_model_circuit_open",
            "1 while a model's circuit refuses new answers (open, or one probe under way)",
            labels=["circuit"],
        )
        for circuit in self._circuits():
            gauge.add_metric([circuit.name], 0.0 if circuit.state is CircuitState.CLOSED else 1.0)
        yield gauge


@contextlib.asynccontextmanager
async def serve(metrics: Metrics, health: Health, host: str, port: int) -> AsyncIterator[int]:
    """/metrics and /healthz on host:port while the block runs, and the loop-lag watch with them; yields the
    port (port 0 picks a free one)."""

    async def scrape(_: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def healthz(_: web.Request) -> web.Response:
        report = await health()
        return web.Response(status=report.status, text=report.text)

    app = web.Application()
    app.router.add_get("/metrics", scrape)
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    port = runner.addresses[0][1]  # the real one when port 0 asked for any free port
    log.info("Metrics and health on http://%s:%d/metrics and /healthz", host, port)
    lag = asyncio.create_task(metrics.watch_loop_lag(), name="event-loop-lag")
    try:
        yield port
    finally:
        lag.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await lag
        await runner.cleanup()
