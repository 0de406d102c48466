"""The collector's tuning (bot/gc_tuning.py): fewer young passes; start-up objects kept out of full ones."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from bot import gc_tuning


@pytest.fixture
def collector() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.set_threshold(*threshold)


def test_young_collections_wait_for_more_objects(collector: None) -> None:
    _, middle, old = gc.get_threshold()
    gc_tuning.tune()
    assert gc.get_threshold() == (gc_tuning.YOUNG_THRESHOLD, middle, old)


def test_objects_alive_at_ready_are_frozen(collector: None) -> None:
    gc.unfreeze()
    alive = [object() for _ in range(10)]  # noqa: F841 - alive when the bot is ready
    gc_tuning.freeze_startup_objects()
    assert gc.get_freeze_count() > 0
    gc.unfreeze()
