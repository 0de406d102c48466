"""ReplyDisplay's handling of failed deliveries, with the real pacer and a scripted target (pure logic:
what Discord answers is scripted here; the end-to-end tests cover the real path)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from bot.streaming import display as display_module
from bot.streaming.display import ReplyDisplay
from bot.streaming.pacer import Pacer
from bot.streaming.render import render
from bot.streaming.routes import Route
from bot.streaming.target import DeliveryRetry, FileUpload


class ScriptedTarget:
    """Fails the first `failures` puts with a passing error, then shows what it is given."""

    answer_deadline = False

    def __init__(self, failures: int) -> None:
        self.channel_id = 1
        self.message_ids: list[int] = []
        self.failures = failures
        self.shown: list[str] = []
        self.files: list[FileUpload | None] = []
        self.button = False
        self._changed = asyncio.Condition()

    def placeholder_delay(self) -> float:
        return 0.0

    def route(self, page: int) -> Route:
        return Route(None, "PATCH /test", False)

    async def put(self, page: int, content: str, file: FileUpload | None = None) -> None:
        if self.failures:
            self.failures -= 1
            raise DeliveryRetry("503")
        if page == len(self.message_ids):
            self.message_ids.append(page + 100)
        self.shown.append(content)
        self.files.append(file)
        await self._notify()

    def reaction_route(self, shown: bool) -> Route:
        return Route(None, "REACTION /test/reactions", False)

    async def set_stop_button(self, shown: bool) -> None:
        self.button = shown
        await self._notify()

    def note_route(self) -> Route:
        return Route(None, "POST /test/notes", False)

    async def note(self, text: str) -> None:
        self.shown.append(text)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(predicate), 5)


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
    display = ReplyDisplay(
        target, pacer, "r", on_gone=lambda: None, on_blocked=lambda _: None, on_page=no_page
    )
    display.finish("All done.", "")
    assert await display.wait_synced(5)
    assert target.shown == ["All done."]


async def test_gives_up_after_the_last_retry_and_says_so(pacer: Pacer) -> None:
    target = ScriptedTarget(display_module.FINAL_MAX_RETRIES + 1)
    display = ReplyDisplay(
        target, pacer, "r", on_gone=lambda: None, on_blocked=lambda _: None, on_page=no_page
    )
    display.finish("All done.", "")
    assert not await display.wait_synced(5)
    assert target.shown == []


async def test_a_live_status_line_shows_while_streaming_and_never_in_the_final_version(pacer: Pacer) -> None:
    target = ScriptedTarget(0)
    display = ReplyDisplay(
        target, pacer, "r", on_gone=lambda: None, on_blocked=lambda _: None, on_page=no_page
    )
    display.set_status("💭 thinking… 3 s")
    await target.wait_for(lambda: target.shown[-1:] == ["💭 thinking… 3 s ▌"])  # in place of the bare ▌
    await target.wait_for(lambda: target.button)  # the stop button goes up with the first page
    display.set_status(None)
    display.update("Paris")
    await target.wait_for(lambda: target.shown[-1] == "Paris ▌")  # the text replaces it
    display.set_status("⚠️ retrying (1 of 2)")
    await target.wait_for(lambda: target.shown[-1] == "Paris\n⚠️ retrying (1 of 2) ▌")  # under the text
    display.finish("Paris is the capital.", "")
    assert await display.wait_synced(5)
    assert target.shown[-1] == "Paris is the capital."
    assert not target.button


async def test_an_abandoned_reply_is_left_alone_and_releases_its_waiters(pacer: Pacer) -> None:
    target = ScriptedTarget(0)
    display = ReplyDisplay(
        target, pacer, "r", on_gone=lambda: None, on_blocked=lambda _: None, on_page=no_page
    )
    display.update("Paris")
    await target.wait_for(lambda: target.button)
    display.abandon()
    display.finish("Paris is the capital.", "")
    assert await display.wait_synced(5)  # nothing left to show it in
    assert (target.shown, target.button) == (["Paris ▌"], True)  # no edit and no removal of a deleted reply


async def test_a_file_goes_with_the_final_version_of_the_last_page(pacer: Pacer) -> None:
    target = ScriptedTarget(0)
    display = ReplyDisplay(
        target, pacer, "r", on_gone=lambda: None, on_blocked=lambda _: None, on_page=no_page
    )
    display.update("word " * 500)
    await target.wait_for(lambda: len(target.shown) == 2)  # two pages while streaming
    thinking = FileUpload("reasoning.md", b"Hmm.")
    display.finish("word " * 500, "", thinking)
    assert await display.wait_synced(5)
    assert target.files == [None, None, thinking]  # two pages while streaming, then the last one final


class ChannelScriptedTarget(ScriptedTarget):
    """Pages are channel messages: every put spends the channel's message budget."""

    def route(self, page: int) -> Route:
        if page >= len(self.message_ids):
            return Route.create_message(self.channel_id)
        return Route.edit_message(self.channel_id, self.message_ids[page])


async def test_a_page_break_goes_out_as_one_burst_within_the_channel_budget() -> None:
    # Two creates and two edits per 20 s per channel (one every 10 s): a normal edit could not follow
    # within the test.
    pacer = Pacer(channel_limit=2, channel_window=20.0)
    await pacer.start()
    try:
        target = ChannelScriptedTarget(0)
        display = ReplyDisplay(
            target, pacer, "r", on_gone=lambda: None, on_blocked=lambda _: None, on_page=no_page
        )
        text = " ".join(["word"] * 1000)  # three pages
        display.update(text)
        # The first page and the next one went out together: no spacing between them.
        await target.wait_for(lambda: len(target.shown) == 2)
        # A job in another channel has run since: the dispatcher had its chance at the third page.
        await asyncio.wait_for(pacer.run(lambda: asyncio.sleep(0), Route.create_message(2)), 2)
        assert len(target.message_ids) == 2  # the burst stopped at the channel's create budget
        assert [len(content) <= 2000 for content in target.shown] == [True, True]
    finally:
        await pacer.close()


class HeldEditTarget(ChannelScriptedTarget):
    """Like discord.py with an interaction's webhook: one request at a time, and an edit that exhausts its
    bucket holds the next request until the bucket resets (here: until released)."""

    def __init__(self) -> None:
        super().__init__(0)
        self.release = asyncio.Event()
        self._one_at_a_time = asyncio.Lock()

    async def put(self, page: int, content: str, file: FileUpload | None = None) -> None:
        async with self._one_at_a_time:
            edit = page < len(self.message_ids)
            await super().put(page, content, file)
            if edit:
                await self.release.wait()


async def test_a_new_page_does_not_wait_for_the_finishing_edit_to_return(pacer: Pacer) -> None:
    target = HeldEditTarget()
    display = ReplyDisplay(
        target, pacer, "r", on_gone=lambda: None, on_blocked=lambda _: None, on_page=no_page
    )
    display.update("Paris")
    await target.wait_for(lambda: target.shown == ["Paris ▌"])
    words = " ".join(["word"] * 450)  # two pages
    display.finish(words, "")
    await target.wait_for(lambda: len(target.message_ids) == 2)  # not held behind the edit
    assert target.shown[:2] == ["Paris ▌", render(words, streaming=False)[1]]
    target.release.set()
    assert await display.wait_synced(5)
    assert target.shown[-1] == render(words, streaming=False)[0]


async def test_a_page_break_spends_the_create_budget_when_the_edit_budget_is_spent() -> None:
    pacer = Pacer(channel_limit=2, channel_window=20.0)  # as above: 2 creates and 2 edits per 20 s
    await pacer.start()
    try:
        target = ChannelScriptedTarget(0)
        display = ReplyDisplay(
            target, pacer, "r", on_gone=lambda: None, on_blocked=lambda _: None, on_page=no_page
        )
        display.update("Paris")
        await target.wait_for(lambda: target.shown == ["Paris ▌"])  # one create
        # Another request edits in the channel: one edit is left, one create too.
        await pacer.submit("other", lambda: asyncio.sleep(0), Route.edit_message(1, 7), priority=True)
        words = " ".join(["word"] * 450)  # two pages
        display.finish(words, "")
        # The final edit of page one takes the last edit, the new page the last create: both show.
        assert await display.wait_synced(5)
        assert sorted(target.shown[1:]) == sorted(render(words, streaming=False))  # the new page goes first
        assert len(target.message_ids) == 2
    finally:
        await pacer.close()


async def test_a_paused_reader_hands_its_text_to_the_flush_that_wakes_it(pacer: Pacer) -> None:
    target = ScriptedTarget(0)
    display = ReplyDisplay(
        target, pacer, "r", on_gone=lambda: None, on_blocked=lambda _: None, on_page=no_page
    )
    assert display.until_flush() is None  # nothing to wait for: read on
    display.update("Paris")
    waiting = display.until_flush()
    assert waiting is not None
    await waiting  # the flush starts
    display.update("Paris is the")  # what arrived while the reader waited
    await target.wait_for(lambda: bool(target.shown))
    assert target.shown[0] == "Paris is the ▌"  # sent by the flush that woke the reader


async def test_a_flush_waits_only_a_moment_for_a_reader_with_nothing_new(pacer: Pacer) -> None:
    target = ScriptedTarget(0)
    display = ReplyDisplay(
        target, pacer, "r", on_gone=lambda: None, on_blocked=lambda _: None, on_page=no_page
    )
    display.update("Paris")
    waiting = display.until_flush()
    assert waiting is not None
    await waiting  # woken, but the model sent nothing meanwhile
    await target.wait_for(lambda: target.shown == ["Paris ▌"])
