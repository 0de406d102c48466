"""Outcomes and status lines: the one vocabulary the code, the database and conversation history share."""

from __future__ import annotations

import re

import pytest

from bot.db import Database
from bot.db.postgres import PostgresDatabase
from bot.model_retry import Failure, FailureKind
from bot.status import (
    CONTENT_FILTER,
    IMAGES_REFUSED,
    INTERRUPTED_BY_RESTART,
    NOT_RECORDED,
    OUTPUT_LIMIT,
    QUESTION_DELETED,
    UNDELIVERABLE,
    Status,
    answered_by,
    failed,
    falling_back,
    left_out,
    retried_shorter,
    retrying,
    skipped_files,
    split_status,
    stopped_by,
    thinking,
    thought_for,
    too_long,
    too_slow,
)

# Every status line the bot writes; a new builder in bot/status.py belongs here too.
LINES = [
    stopped_by("Alice"),
    stopped_by("its author"),
    QUESTION_DELETED,
    INTERRUPTED_BY_RESTART,
    OUTPUT_LIMIT,
    failed("The model server took too long to answer."),
    NOT_RECORDED,
    UNDELIVERABLE,
    left_out(12),
    retried_shorter(15),
    CONTENT_FILTER,
    IMAGES_REFUSED,
    thinking(3),
    thought_for(12.4),
    too_long(8),
    too_slow(600),
    skipped_files([("a.zip", "not a text file or an image")]),
    "*(stopped at the output limit)*",  # what earlier versions wrote
    retrying(Failure(FailureKind.RATE_LIMITED, 429, 5), 1, 2, 5),
    falling_back("fake-model-mini", None),
    answered_by("fake-model-mini"),
]


async def test_the_usage_status_check_lists_exactly_the_statuses(db: Database) -> None:
    if isinstance(db, PostgresDatabase):
        rows = await db.fetchall(
            "SELECT pg_get_constraintdef(oid) AS def FROM pg_constraint"
            " WHERE conrelid = 'usage'::regclass AND contype = 'c'"
        )
        [check] = [row["def"] for row in rows if "status" in row["def"]]
        allowed = set(re.findall(r"'([^']*)'", check))
    else:
        row = await db.fetchone("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'usage'")
        assert row is not None
        match = re.search(r"CHECK\s*\(\s*status\s+IN\s*\(([^)]*)\)\s*\)", row["sql"])
        assert match is not None, row["sql"]
        allowed = {value.strip().strip("'") for value in match.group(1).split(",")}
    assert allowed == {status.value for status in Status}


@pytest.mark.parametrize("line", LINES)
@pytest.mark.parametrize("answer", ["", "Paris.", "Line one\n\nLine two"])
def test_every_status_line_is_recognised_under_an_answer(line: str, answer: str) -> None:
    content = f"{answer}\n{line}" if answer else line
    assert split_status(content) == (answer, line)
    assert split_status(f"{content} ▌") == (answer, line)  # a live line while streaming


@pytest.mark.parametrize("content", ["Paris.", "Paris is ▌", "▌", "Stop\n⏹", "*(stopped at the output"])
def test_a_plain_answer_has_no_status_line(content: str) -> None:
    assert split_status(content) == (content.removesuffix("▌").rstrip(), None)


def test_stopped_by_shows_the_name_literally() -> None:
    line = stopped_by("*Al_ice* `x` ||s|| <@1> [a](b) \\")
    assert line == r"⏹ stopped by \*Al\_ice\* \`x\` \|\|s\|\| \<@1\> \[a\]\(b\) \\"
    assert split_status(f"Text\n{line}") == ("Text", line)


def test_several_status_lines_under_one_answer() -> None:
    lines = f"{skipped_files([('a.zip', 'too big')])}\n{thought_for(3)}\n{OUTPUT_LIMIT}"
    assert split_status(f"Paris.\n\n{lines}") == ("Paris.", lines)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            retrying(Failure(FailureKind.RATE_LIMITED, 429, 4.2), 1, 2, 4.2),
            "⚠️ the model server is overloaded (429): retrying in 5 s (1 of 2)",
        ),
        (
            retrying(Failure(FailureKind.SERVER_ERROR, 500), 2, 3, 0.5),
            "⚠️ the model server failed (500): retrying (2 of 3)",
        ),
        (
            falling_back("mini", Failure(FailureKind.TIMEOUT)),
            "⚠️ the model server did not answer in time: asking `mini` instead",
        ),
        (falling_back("a`b", None), "⚠️ the model is unavailable: asking `a'b` instead"),
    ],
)
def test_model_trouble_lines_say_what_went_wrong_and_what_happens_next(line: str, expected: str) -> None:
    assert line == expected


def test_several_status_lines_under_an_answer_are_all_recognised() -> None:
    lines = f"{answered_by('mini')}\n{stopped_by('Bob')}"
    assert split_status(f"Paris.\n{lines}") == ("Paris.", lines)


def test_stores_pass_statuses_as_parameters_not_sql_literals() -> None:
    """One home for the outcome words: the stores' SQL takes Status values as parameters (A4)."""
    from pathlib import Path

    import bot.store
    from bot.status import Status

    for path in Path(bot.store.__path__[0]).glob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert not [s for s in Status if f"'{s.value}'" in text], path.name
