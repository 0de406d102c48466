"""What the model is sent back of its earlier answers (pure)."""

from __future__ import annotations

import pytest

from bot.conversation import Turn, join_pages, openai_name, render_turns, shown_answer


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


@pytest.mark.parametrize(
    ("speaker", "name"),
    [("alice", "alice"), ("Zoë the 2nd!", "Zo_the_2nd"), ("李", "user"), ("x" * 80, "x" * 64)],
)
def test_speaker_names_fit_openai_name_field(speaker: str, name: str) -> None:
    assert openai_name(speaker, "user") == name


def test_user_turns_name_their_speaker_and_say_it_once_two_people_talk() -> None:
    alone = [Turn("user", "hi", "Alice"), Turn("assistant", "hello"), Turn("user", "bye", "Alice")]
    assert render_turns(alone) == [
        {"role": "user", "content": "hi", "name": "Alice"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "bye", "name": "Alice"},
    ]
    shared = [Turn("user", "hi", "Alice"), Turn("assistant", "hello"), Turn("user", "me too", "Bob B.")]
    assert render_turns(shared)[0] == {"role": "user", "content": "Alice: hi", "name": "Alice"}
    assert render_turns(shared)[2] == {"role": "user", "content": "Bob B.: me too", "name": "Bob_B"}


def test_pages_join_into_the_answer_they_were_cut_from() -> None:
    assert join_pages(["one\n\n", "two"]) == "one\n\ntwo"
    # Discord trimmed the whitespace at the cut: the kind of break in the page's second half comes back.
    assert join_pages(["one two", "three"]) == "one two three"
    assert join_pages(["a\nb\n\nc", "d"]) == "a\nb\n\nc\n\nd"
    assert join_pages(["a\n```py\nx\n```", "```py\ny\n```"]) == "a\n```py\nx\ny\n```"
