"""How hard the process is working, measured as it runs: event-loop lag and CPU share, sampled on a timer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

INTERVAL = 0.2  # seconds between samples
SMOOTHING = 0.3  # weight of the newest sample in the moving averages


@dataclass(frozen=True)
class LoadSample:
    lag: float  # seconds the event loop runs late (the latest tick, or a decaying average of past ones)
    cpu: float  # share of one core the process used (moving average); the event loop is one thread


class LoopMonitor:
    """Hands ``on_sample`` a LoadSample every INTERVAL while started. The timer's lateness is the event
    loop's lag: everything else waiting for the loop waited as long."""

    def __init__(self, on_sample: Callable[[LoadSample], None], interval: float = INTERVAL) -> None:
        self._on_sample = on_sample
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if not self.running:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="loop-monitor")

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _run(self) -> None:
        lag = cpu = 0.0
        wall, used = time.monotonic(), time.process_time()
        while True:
            await asyncio.sleep(self._interval)
            now, now_used = time.monotonic(), time.process_time()
            elapsed = now - wall
            late = max(0.0, elapsed - self._interval)
            lag = max(late, lag + SMOOTHING * (late - lag))  # rises at once, settles gradually
            cpu += SMOOTHING * ((now_used - used) / elapsed - cpu)
            wall, used = now, now_used
            self._on_sample(LoadSample(lag, cpu))
