"""What the model is sent back of its earlier answers (pure)."""

from __future__ import annotations

import pytest

from bot.conversation import Turn, build_request, shown_answer
from bot.settings import ChannelSettings


@pytest.mark.parametrize(
    ("content", "answer"),
    [
        ("Paris.", "Paris."),
        ("Paris is ▌", "Paris is"),
        ("Paris is the\n⏹ stopped by Alice", "Paris is the"),
        ("Paris\n⚠️ The model server took too long to answer.", "Paris"),
        ("A long answer\n*(stopped at the output limit)*", "A long answer"),
        ("⏹ interrupted: the bot restarted", ""),
        ("Line one\nLine two", "Line one\nLine two"),
    ],
)
def test_shown_answer_drops_the_marker_and_the_status_line(content: str, answer: str) -> None:
    assert shown_answer(content) == answer


def test_build_request_keeps_the_last_turns_the_setting_allows() -> None:
    settings = ChannelSettings(model="m", system_prompt="Be brief.", history=2, max_tokens=50)
    turns = [Turn("user", "a"), Turn("assistant", "b"), Turn("user", "c")]
    request = build_request(settings, "d", turns)
    assert request.messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"},
        {"role": "user", "content": "d"},
    ]
    assert (request.model, request.max_tokens) == ("m", 50)
    assert build_request(ChannelSettings(model="m", system_prompt="", history=0), "x", turns).messages == [
        {"role": "user", "content": "x"}
    ]
