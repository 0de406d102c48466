"""The inline `<think>` splitter (pure): every split point of a sample gives the same reasoning and answer."""

from __future__ import annotations

import itertools

import pytest

from bot.reasoning import ThinkSplitter

SAMPLE = "  <think>Let me see: is 2 < 3? </thin yes.\n</think>\n\nYes, 2 < 3 (see <think> tags).</"


def split(chunks: list[str]) -> tuple[str, str]:
    splitter = ThinkSplitter()
    reasoning, answer = [], []
    for chunk in chunks:
        r, a = splitter.feed(chunk)
        reasoning.append(r)
        answer.append(a)
    r, a = splitter.flush()
    return "".join([*reasoning, r]), "".join([*answer, a])


EXPECTED = ("Let me see: is 2 < 3? </thin yes.\n", "Yes, 2 < 3 (see <think> tags).</")


@pytest.mark.parametrize("cut", range(len(SAMPLE) + 1))
def test_any_single_split_point(cut: int) -> None:
    assert split([SAMPLE[:cut], SAMPLE[cut:]]) == EXPECTED


def test_every_pair_of_split_points_and_one_character_at_a_time() -> None:
    for a, b in itertools.combinations(range(len(SAMPLE) + 1), 2):
        assert split([SAMPLE[:a], SAMPLE[a:b], SAMPLE[b:]]) == EXPECTED, (a, b)
    assert split(list(SAMPLE)) == EXPECTED


def test_no_block_is_all_answer_verbatim() -> None:
    assert split(["  Hello", " <think>x</think>"]) == ("", "  Hello <think>x</think>")
    assert split(["<thi", "s is not a tag"]) == ("", "<this is not a tag")
    assert split(["<th"]) == ("", "<th")  # the stream ended on what looked like a tag


def test_an_unclosed_block_is_all_reasoning() -> None:
    assert split(["<think>still thinking </thi"]) == ("still thinking </thi", "")


def test_done_once_the_answer_begins() -> None:
    splitter = ThinkSplitter()
    splitter.feed("<think>a</think>\n")
    assert not splitter.done
    assert splitter.feed(" B") == ("", "B")
    assert splitter.done
