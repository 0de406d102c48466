"""A circuit breaker for one model: after N failed answers in a row within a window, refuse new ones at
once for a cool-down (doubling while the model stays down), then let one probe through (pure)."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

log = logging.getLogger(__name__)


class CircuitOpen(Exception):
    """A question refused without asking the model: its circuit is open."""

    def __init__(self, model: str, retry_in: float) -> None:
        super().__init__(f"the circuit of {model} is open for {retry_in:.0f} s more")
        self.model = model
        self.retry_in = retry_in


class CircuitState(StrEnum):
    CLOSED = "closed"  # answers go through
    OPEN = "open"  # answers are refused until the cool-down ends
    PROBING = "probing"  # one answer is checking whether the model is back; the rest are refused


@dataclass(frozen=True)
class Pass:
    """What the circuit says to a new answer."""

    allowed: bool
    probe: bool = False  # this answer decides whether the circuit closes: report its outcome
    retry_in: float = 0.0  # when refused: seconds until a probe may go through (about)


@dataclass(frozen=True)
class CircuitStatus:
    """For a health endpoint and the log."""

    name: str
    state: CircuitState
    failures: int  # failed answers in a row, within the window
    retry_in: float  # seconds until the next probe, 0 when closed
    cool_down: float


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        *,
        threshold: int = 5,
        window: float = 60.0,
        cool_down: float = 30.0,
        max_cool_down: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self._threshold = threshold
        self._window = window
        self._base_cool_down = cool_down
        self._max_cool_down = max(max_cool_down, cool_down)
        self._clock = clock
        self._failures: deque[float] = deque()  # when each failed answer of the current run ended
        self._state = CircuitState.CLOSED
        self._cool_down = cool_down
        self._opened_at = 0.0

    @property
    def is_open(self) -> bool:
        """New work should not go to this model now (retries of admitted answers check this too)."""
        return self._state is not CircuitState.CLOSED

    def enter(self) -> Pass:
        if self._state is CircuitState.CLOSED:
            return Pass(allowed=True)
        retry_in = self._retry_in()
        if self._state is CircuitState.OPEN and retry_in <= 0:
            self._state = CircuitState.PROBING
            log.info("Circuit %s: probing whether the model server is back", self.name)
            return Pass(allowed=True, probe=True)
        return Pass(allowed=False, retry_in=retry_in if retry_in > 0 else self._cool_down)

    def succeeded(self) -> None:
        self._failures.clear()
        if self._state is not CircuitState.CLOSED:
            log.warning("Circuit %s closed: the model server answers again", self.name)
        self._state = CircuitState.CLOSED
        self._cool_down = self._base_cool_down

    def failed(self, *, probe: bool) -> None:
        now = self._clock()
        if probe and self._state is CircuitState.PROBING:
            self._open(now, min(self._cool_down * 2, self._max_cool_down), "the probe failed")
            return
        if self._state is not CircuitState.CLOSED:
            return  # an answer admitted before the circuit opened: already counted as down
        self._failures.append(now)
        while self._failures and now - self._failures[0] > self._window:
            self._failures.popleft()
        if len(self._failures) >= self._threshold:
            self._open(now, self._base_cool_down, f"{len(self._failures)} failed answers in a row")

    def abandoned(self, *, probe: bool) -> None:
        """The answer ended without telling (stopped by the user): a probe's turn goes to the next answer."""
        if probe and self._state is CircuitState.PROBING:
            self._state = CircuitState.OPEN
            self._opened_at = self._clock() - self._cool_down

    def status(self) -> CircuitStatus:
        return CircuitStatus(
            name=self.name,
            state=self._state,
            failures=len(self._failures),
            retry_in=max(self._retry_in(), 0.0) if self._state is CircuitState.OPEN else 0.0,
            cool_down=self._cool_down,
        )

    def _retry_in(self) -> float:
        return self._opened_at + self._cool_down - self._clock()

    def _open(self, now: float, cool_down: float, why: str) -> None:
        self._state = CircuitState.OPEN
        self._opened_at = now
        self._cool_down = cool_down
        log.warning("Circuit %s open for %.1f s: %s", self.name, cool_down, why)
