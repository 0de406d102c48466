"""ReplyDisplay's handling of failed deliveries, with the real pacer and a scripted target (pure logic:
what Discord answers is scripted here; the end-to-end tests cover the real path)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.streaming import display as display_module
from bot.streaming.display import ReplyDisplay
from bot.streaming.pacer import Pacer
from bot.streaming.target import DeliveryRetry, Route


class ScriptedTarget:
    """Fails the first `failures` puts with a passing error, then shows what it is given."""

    def __init__(self, failures: int) -> None:
        self.channel_id = 1
        self.message_ids: list[int] = []
        self.failures = failures
        self.shown: list[str] = []

    def placeholder_delay(self) -> float:
        return 0.0

    def route(self, page: int) -> Route:
        return Route(None, "PATCH /test", False)

    async def put(self, page: int, content: str) -> None:
        if self.failures:
            self.failures -= 1
            raise DeliveryRetry("503")
        if page == len(self.message_ids):
            self.message_ids.append(page + 100)
        self.shown.append(content)


@pytest.fixture
async def pacer(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Pacer]:
    monkeypatch.setattr(display_module, "RETRY_BACKOFF", 0.001)
    pacer = Pacer()
    await pacer.start()
    yield pacer
    await pacer.close()


async def no_page(ids: list[int]) -> None:
    return None


@pytest.mark.parametrize("failures", [1, display_module.MAX_RETRIES])
async def test_passing_failures_are_retried_until_the_final_text_shows(pacer: Pacer, failures: int) -> None:
    target = ScriptedTarget(failures)
    display = ReplyDisplay(target, pacer, "r", on_gone=lambda: None, on_page=no_page)
    display.finish("All done.", "")
    assert await display.wait_synced(5)
    assert target.shown == ["All done."]


async def test_gives_up_after_the_last_retry_and_says_so(pacer: Pacer) -> None:
    target = ScriptedTarget(display_module.MAX_RETRIES + 1)
    display = ReplyDisplay(target, pacer, "r", on_gone=lambda: None, on_page=no_page)
    display.finish("All done.", "")
    assert not await display.wait_synced(5)
    assert target.shown == []
