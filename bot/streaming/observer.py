"""What the streaming services report as they work, for whoever watches (metrics, the budget); the services
call these hooks and know nothing about who listens. The base class ignores everything."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.streaming.stream import Requester


@dataclass(frozen=True)
class FinishedAnswer:
    requester: Requester
    outcome: str  # a Status value
    prompt_tokens: int
    completion_tokens: int  # reasoning tokens included
    model: str  # the model its usage row names
    reasoning_tokens: int = 0


class StreamObserver:
    def answer_finished(self, answer: FinishedAnswer) -> None:
        """An answer ended and its usage is recorded."""

    def first_text(self, seconds: float) -> None:
        """From the request to the first text the user could see."""

    def display_lag(self, seconds: float) -> None:
        """From text arriving from the model to an edit showing it landing in Discord."""

    def model_error(self, kind: str) -> None:
        """A request to the model failed; kind is bot.llm.error_kind()."""

    def discord_response(self, status: int | None) -> None:
        """A REST response from Discord (None: no response, the connection failed)."""


class Observers(StreamObserver):
    """Tells every observer in turn."""

    def __init__(self, observers: Sequence[StreamObserver]) -> None:
        self._observers = list(observers)

    def answer_finished(self, answer: FinishedAnswer) -> None:
        for observer in self._observers:
            observer.answer_finished(answer)

    def first_text(self, seconds: float) -> None:
        for observer in self._observers:
            observer.first_text(seconds)

    def display_lag(self, seconds: float) -> None:
        for observer in self._observers:
            observer.display_lag(seconds)

    def model_error(self, kind: str) -> None:
        for observer in self._observers:
            observer.model_error(kind)

    def discord_response(self, status: int | None) -> None:
        for observer in self._observers:
            observer.discord_response(status)


NO_OBSERVER = StreamObserver()
