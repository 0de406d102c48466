"""Adaptive admission as pure logic: load samples are injected, so an 'artificially slowed loop' is a
sample with a large lag; nothing here depends on timing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from bot.streaming import intake as intake_module
from bot.streaming.intake import (
    CPU_LIMIT,
    FAR_REFRESHES,
    FLOOR,
    LAG_LIMIT,
    POSITION_REFRESH,
    START,
    STEADY,
    Intake,
)
from bot.streaming.load import LoadSample

HEALTHY = LoadSample(lag=0.0, cpu=0.05)
SLOWED = LoadSample(lag=LAG_LIMIT * 5, cpu=0.05)


class Answers:
    """Tasks that each hold an admission until released, recording the queue positions they were shown;
    each starts streaming once admitted unless ``streaming`` is False (the model has not answered yet)."""

    def __init__(self, intake: Intake, *, streaming: bool = True) -> None:
        self.intake = intake
        self._streaming = streaming
        self.positions: list[list[int | None]] = []
        self._release = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    def ask(self, count: int) -> None:
        for _ in range(count):
            shown: list[int | None] = []
            self.positions.append(shown)
            self.tasks.append(asyncio.create_task(self._hold(shown.append)))

    async def _hold(self, on_position: Callable[[int | None], None]) -> None:
        async with self.intake.admitted(on_position) as admission:
            if self._streaming:
                admission.started()
            await self._release.wait()

    async def settled(self, predicate: Callable[[], bool]) -> None:
        """Let the tasks run until the intake reaches the state (its changes are synchronous)."""
        async with asyncio.timeout(2):
            while not predicate():  # noqa: ASYNC110 - plain intake state, changed synchronously
                await asyncio.sleep(0)

    async def release_all(self) -> None:
        self._release.set()
        await asyncio.gather(*self.tasks, return_exceptions=True)  # some may have been cancelled


@pytest.fixture
async def answers() -> AsyncIterator[Answers]:
    result = Answers(Intake(measure=False))
    yield result
    await result.release_all()


async def test_admits_a_start_at_once_and_queues_the_rest_in_order(answers: Answers) -> None:
    answers.ask(START + 3)
    await answers.settled(lambda: answers.intake.active + answers.intake.queued == START + 3)
    assert (answers.intake.active, answers.intake.queued) == (START, 3)
    assert answers.positions[START:] == [[0], [1], [2]]


async def test_a_slowed_loop_pauses_admissions_and_a_healthy_one_resumes_them() -> None:
    now = [0.0]
    answers = Answers(Intake(measure=False, clock=lambda: now[0]))
    answers.ask(START + 10)
    await answers.settled(lambda: answers.intake.queued == 10)
    now[0] += STEADY  # the running answers' cost is measured from here on
    answers.intake.sample(SLOWED)
    assert (answers.intake.active, answers.intake.queued) == (START, 10)
    answers.intake.sample(HEALTHY)
    assert (answers.intake.active, answers.intake.queued) == (START + 10, 0)
    await answers.settled(lambda: all(p[-1:] == [None] for p in answers.positions[START:]))
    await answers.release_all()


async def test_cpu_cost_per_streaming_answer_bounds_how_many_run() -> None:
    now = [0.0]
    answers = Answers(Intake(measure=False, clock=lambda: now[0]))
    answers.ask(4 * START)
    await answers.settled(lambda: answers.intake.streaming == START and answers.intake.queued == 3 * START)
    # Right after answers started, the CPU also pays for starting them: it says nothing of their cost.
    answers.intake.sample(LoadSample(lag=0.0, cpu=CPU_LIMIT))
    assert answers.intake.active == START
    now[0] += STEADY
    # Settled: they take a third of the CPU they may, so three times as many fit.
    answers.intake.sample(LoadSample(lag=0.0, cpu=CPU_LIMIT / 3))
    assert answers.intake.active == 3 * START
    await answers.settled(lambda: answers.intake.streaming == 3 * START)
    now[0] += STEADY
    # 3 * START answers take all the CPU they may, so no more fit, even with the loop on time.
    answers.intake.sample(LoadSample(lag=0.0, cpu=CPU_LIMIT))
    assert answers.intake.active == 3 * START
    # They cost half as much: twice as many fit.
    answers.intake.sample(LoadSample(lag=0.0, cpu=CPU_LIMIT / 2))
    assert answers.intake.active == 4 * START
    await answers.release_all()


async def test_growth_is_stepwise_so_measurements_can_follow() -> None:
    now = [0.0]
    answers = Answers(Intake(measure=False, clock=lambda: now[0]))
    answers.ask(10 * START)
    await answers.settled(lambda: answers.intake.streaming == START)
    answers.intake.sample(HEALTHY)
    assert answers.intake.active == START  # a quiet loop says nothing yet: no cost has been measured
    now[0] += STEADY
    answers.intake.sample(HEALTHY)  # measured: cheap, so more fit
    assert answers.intake.active == 3 * START  # at most twice those streaming, plus a start, per sample
    await answers.settled(lambda: answers.intake.streaming == 3 * START)
    answers.intake.sample(HEALTHY)
    assert answers.intake.active == 7 * START
    await answers.release_all()


async def test_answers_waiting_for_their_model_do_not_grow_the_allowance() -> None:
    answers = Answers(Intake(measure=False), streaming=False)
    answers.ask(2 * START)
    await answers.settled(lambda: answers.intake.queued == START)
    answers.intake.sample(HEALTHY)  # cheap so far, but their cost is not known yet
    assert answers.intake.active == START
    await answers.release_all()


async def test_the_queue_keeps_moving_however_slow_the_loop() -> None:
    answers = Answers(Intake(measure=False))
    answers.intake.sample(SLOWED)  # before anything runs: the allowance falls to the floor
    answers.ask(FLOOR + 2)
    await answers.settled(lambda: answers.intake.queued == 2)
    assert answers.intake.active == FLOOR
    await answers.release_all()
    assert (answers.intake.active, answers.intake.queued) == (0, 0)


async def test_positions_are_updated_as_the_queue_moves(
    answers: Answers, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(intake_module, "POSITION_REFRESH", 0.0)
    answers.intake.sample(SLOWED)
    answers.ask(FLOOR + 3)
    await answers.settled(lambda: answers.intake.queued == 3)
    first, second, third = answers.positions[FLOOR:]
    answers.tasks[FLOOR].cancel()  # the first in line gives up
    await answers.settled(lambda: answers.intake.queued == 2)
    answers.intake.sample(SLOWED)
    assert (first, second, third) == ([0], [1, 0], [2, 1])


async def test_a_hard_ceiling_holds_whatever_the_measurements_say() -> None:
    answers = Answers(Intake(3, measure=False))
    answers.ask(5)
    await answers.settled(lambda: answers.intake.queued == 2)
    answers.intake.sample(HEALTHY)
    assert answers.intake.active == 3
    await answers.release_all()


async def test_an_answer_cancelled_in_the_queue_gives_its_turn_to_the_next(answers: Answers) -> None:
    answers.intake.sample(SLOWED)
    answers.ask(FLOOR + 2)
    await answers.settled(lambda: answers.intake.queued == 2)
    answers.tasks[FLOOR].cancel()  # the first in line gives up; its task has not run its handler yet
    answers.intake.sample(HEALTHY)  # a place frees at that very moment
    await answers.settled(lambda: answers.tasks[FLOOR].done())
    assert (answers.intake.active, answers.intake.queued) == (FLOOR + 1, 0)
    assert answers.positions[FLOOR + 1] == [1, None]


async def test_places_far_back_are_shown_less_often() -> None:
    now = [0.0]
    answers = Answers(Intake(measure=False, clock=lambda: now[0]))
    answers.intake.sample(SLOWED)
    answers.ask(FLOOR + 200)
    await answers.settled(lambda: answers.intake.queued == 200)
    for task in answers.tasks[FLOOR : FLOOR + 5]:  # the first five in line give up
        task.cancel()
    await answers.settled(lambda: answers.intake.queued == 195)
    now[0] += POSITION_REFRESH
    answers.intake.sample(SLOWED)
    near, far = answers.positions[FLOOR + 5], answers.positions[FLOOR + 100]
    assert (near, far) == ([5, 0], [100])  # near the front at once; 95 ahead only a few refreshes later
    now[0] += POSITION_REFRESH * FAR_REFRESHES
    answers.intake.sample(SLOWED)
    assert (near, far) == ([5, 0], [100, 95])
    await answers.release_all()
