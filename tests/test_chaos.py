"""The chaos soak's CI version: the real bot as a subprocess under load with faults injected at random
(seeded). It asserts invariants only, never timings, so a loaded machine makes it slower, not flaky."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.chaos import Soak

pytestmark = pytest.mark.soak


async def test_a_short_chaos_soak_loses_nothing_and_leaves_nothing_stuck(tmp_path: Path) -> None:
    soak = Soak(seed=12, duration=20, concurrency=40, workdir=tmp_path)
    await soak.run()
    print(soak.report())
    assert soak.figures.violations == [], soak.report()
    assert soak.figures.asks > 0 and soak.model_requests > 0
