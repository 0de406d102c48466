"""The in-memory log of model errors (pure)."""

from __future__ import annotations

from bot.model_errors import ModelErrorLog


def test_counts_by_kind_within_the_last_hour() -> None:
    now = [0.0]
    errors = ModelErrorLog(clock=lambda: now[0])
    errors.record("server error")
    now[0] = 1800
    errors.record("rate limited")
    errors.record("rate limited")
    errors.record("server error")
    assert errors.counts() == {"rate limited": 2, "server error": 2}
    now[0] = 3601
    assert errors.counts() == {"rate limited": 2, "server error": 1}
    now[0] = 5500
    assert errors.counts() == {}
