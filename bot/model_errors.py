"""The model errors of the last hour, in memory, for admins (per process: a restart forgets them)."""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable

WINDOW = 3600.0


class ModelErrorLog:
    def __init__(
        self,
        *,
        window: float = WINDOW,
        clock: Callable[[], float] = time.monotonic,
        on_record: Callable[[str], None] | None = None,
    ) -> None:
        self._window = window
        self._clock = clock
        self._on_record = on_record  # also told of each error (the metrics count them)
        # (when, kind), oldest first; bounded so an hour of a busy outage stays small.
        self._entries: deque[tuple[float, str]] = deque(maxlen=100_000)

    def record(self, kind: str) -> None:
        self._entries.append((self._clock(), kind))
        self._prune()
        if self._on_record is not None:
            self._on_record(kind)

    def counts(self) -> dict[str, int]:
        """Errors per kind within the window, most frequent first."""
        self._prune()
        return dict(Counter(kind for _, kind in self._entries).most_common())

    def _prune(self) -> None:
        horizon = self._clock() - self._window
        while self._entries and self._entries[0][0] < horizon:
            self._entries.popleft()
