"""The circuit breaker, on a fake clock (pure)."""

from __future__ import annotations

import logging

import pytest

from bot.circuit import CircuitBreaker, CircuitState


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def breaker(clock: Clock, **kwargs: float) -> CircuitBreaker:
    options: dict[str, float] = {"threshold": 3, "window": 60, "cool_down": 10, "max_cool_down": 35}
    options.update(kwargs)
    return CircuitBreaker("http://model.test/v1 fake-model", clock=clock, **options)  # type: ignore[arg-type]


def fail(circuit: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        assert circuit.enter().allowed
        circuit.failed(probe=False)


def test_opens_after_n_failed_answers_in_a_row_and_refuses_at_once(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    circuit = breaker(clock)
    fail(circuit, 2)
    assert not circuit.is_open
    with caplog.at_level(logging.WARNING, logger="bot.circuit"):
        fail(circuit, 1)
    assert circuit.is_open
    assert "open for 10.0 s" in caplog.text
    clock.now += 4
    verdict = circuit.enter()
    assert not verdict.allowed and verdict.retry_in == pytest.approx(6)
    assert circuit.status().state is CircuitState.OPEN


def test_a_success_resets_the_run(clock: Clock) -> None:
    circuit = breaker(clock)
    fail(circuit, 2)
    circuit.succeeded()
    fail(circuit, 2)
    assert not circuit.is_open


def test_failures_spread_beyond_the_window_do_not_open_it(clock: Clock) -> None:
    circuit = breaker(clock)
    for _ in range(5):
        fail(circuit, 1)
        clock.now += 31
    assert not circuit.is_open


def test_one_probe_per_cool_down_and_it_closes_the_circuit(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    circuit = breaker(clock)
    fail(circuit, 3)
    clock.now += 10
    probe = circuit.enter()
    assert probe.allowed and probe.probe
    assert circuit.status().state is CircuitState.PROBING
    assert not circuit.enter().allowed, "only one probe at a time"
    with caplog.at_level(logging.WARNING, logger="bot.circuit"):
        circuit.succeeded()
    assert "closed" in caplog.text
    assert circuit.status().state is CircuitState.CLOSED
    assert circuit.enter().allowed


def test_the_cool_down_doubles_while_down_up_to_the_cap(clock: Clock) -> None:
    circuit = breaker(clock)
    fail(circuit, 3)
    cool_downs = []
    for _ in range(4):
        clock.now += circuit.status().retry_in
        assert circuit.enter().probe
        circuit.failed(probe=True)
        cool_downs.append(circuit.status().cool_down)
    assert cool_downs == [20, 35, 35, 35]
    clock.now += 35
    assert circuit.enter().probe
    circuit.succeeded()
    fail(circuit, 3)
    assert circuit.status().cool_down == 10, "a new outage starts from the base cool-down"


def test_a_stopped_probe_hands_its_turn_to_the_next_answer(clock: Clock) -> None:
    circuit = breaker(clock)
    fail(circuit, 3)
    clock.now += 10
    assert circuit.enter().probe
    circuit.abandoned(probe=True)
    assert circuit.enter().probe


def test_answers_admitted_before_it_opened_do_not_extend_it(clock: Clock) -> None:
    circuit = breaker(clock)
    admitted = [circuit.enter() for _ in range(5)]
    assert all(p.allowed for p in admitted)
    for _ in admitted:
        circuit.failed(probe=False)
    assert circuit.status().cool_down == 10
    assert circuit.status().retry_in == pytest.approx(10)
