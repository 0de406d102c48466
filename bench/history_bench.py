"""Conversation history benchmark: time from a user's reply to the model being asked, and to the first
visible reply (the placeholder, shown while the chain is read), for a long chain.

    python bench/history_bench.py [--turns 30] [--trials 5]

A reply chain of --turns messages (alternately the user's and answers the bot gave earlier, recorded in its
database) is set up in the loopback Discord before the bot (`python -m bot`, a subprocess) connects. Then
(after one warm-up answer in another channel) the user replies to the chain's last message --trials + 1
times, one answer at a time: the first walk
fetches every message through the pacer (cold), the later ones find them in the history cache (cached).
The figures are from the reply's MESSAGE_CREATE (the fake's clock) to the model request arriving at the fake
model server, and to the first version of the bot's reply to it (same clock).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/history_bench.py` puts bench/ on the path, not the repo root
    sys.path.insert(0, str(ROOT))

from bench.stream_bench import STREAMCORD, BotProcess, Load, poll_until  # noqa: E402
from bot.db import DatabaseLocation, open_database  # noqa: E402
from bot.store.answers import AnswerOrigin, AnswersStore  # noqa: E402
from fakes.discord import FakeDiscord  # noqa: E402
from fakes.llm_server import FakeLLM, Scenario  # noqa: E402

log = logging.getLogger("history-bench")
ANSWER_TIMEOUT = 30.0


async def seed_chain(
    fake: FakeDiscord, db_path: Path, guild: int, channel: int, user: int, turns: int
) -> int:
    """The chain, before the bot connects; returns its last message's id."""
    db = await open_database(DatabaseLocation(path=db_path))
    answers = AnswersStore(db)
    last: int | None = None
    try:
        for i in range(turns):
            if i % 2 == 0:
                last = await fake.post_message(
                    channel, user, f"question {i}: " + "words " * 30, reply_to=last
                )
                continue
            answer = await fake.post_message(
                channel, fake.bot_user_id, f"answer {i}: " + "more " * 60, reply_to=last
            )
            origin = AnswerOrigin(guild, channel, user, "User", prompt_message_id=last)
            await answers.set_pages(f"seed-{i}", origin, [answer])
            last = answer
    finally:
        await db.close()
    assert last is not None
    return last


async def ask(
    fake: FakeDiscord, llm: FakeLLM, channel: int, user: int, text: str, last: int | None
) -> tuple[float, float]:
    """Seconds from a message (a reply to `last`, if given) to the model request it causes and to the first
    thing the bot shows; waits for the answer to finish."""
    asked = len(llm.requests)
    reply = await fake.post_message(channel, user, text, reply_to=last)
    posted = fake.messages[reply].created_at
    await poll_until(
        lambda: len(llm.requests) > asked, timeout=ANSWER_TIMEOUT, what="model asked", strict=True
    )
    request = llm.requests[asked]
    await poll_until(
        lambda: (
            request.finished_at is not None
            and any(
                m.reference_id == reply and not m.content.endswith("▌")
                for m in fake.channel_messages(channel)
            )
        ),
        timeout=ANSWER_TIMEOUT,
        what="answer shown",
        strict=True,
    )
    [shown] = [m for m in fake.channel_messages(channel) if m.reference_id == reply]
    return request.started_at - posted, shown.versions[0].at - posted


async def run(turns: int, trials: int) -> tuple[tuple[float, float], list[tuple[float, float]]]:
    async with FakeDiscord() as fake, FakeLLM(default=Scenario(text="Fine.")) as llm:
        guild = fake.add_guild("Bench")
        channel = fake.add_channel(guild, "history")
        warm_up = fake.add_channel(guild, "warm-up")
        user = fake.add_user(guild, "User")
        with tempfile.TemporaryDirectory(prefix="history-bench-") as tmp:
            workdir = Path(tmp)
            bot = BotProcess(
                STREAMCORD,
                fake,
                llm,
                workdir,
                "history",
                Load(tokens=1, tps=0, ttft=0),
                env={"HISTORY_TURNS": "50", "CONTEXT_TOKENS": "100000"},
            )
            last = await seed_chain(fake, bot.db_path, guild, channel, user, turns)
            await bot.start()
            try:
                # A first answer elsewhere, so the cold figure holds no connection set-up or first query.
                await ask(fake, llm, warm_up, user, f"<@{fake.bot_user_id}> hi", None)
                cold = await ask(fake, llm, channel, user, "and then?", last)
                cached = [await ask(fake, llm, channel, user, "and then?", last) for _ in range(trials)]
                history = llm.requests[1].body["messages"]
                if len(history) < turns + 2:  # system, the chain, the question
                    raise RuntimeError(f"the model saw {len(history)} messages, not the whole chain")
            finally:
                await bot.stop()
    return cold, cached


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=30)
    parser.add_argument("--trials", type=int, default=5)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    cold, cached = asyncio.run(run(args.turns, args.trials))
    for i, what in enumerate(("model request", "first visible reply")):
        times = [c[i] for c in cached]
        print(f"{args.turns}-turn reply chain: reply → {what}")
        print(f"  cold (every message fetched through the pacer): {cold[i] * 1000:7.1f} ms")
        print(
            f"  cached (median of {len(times)}):                    {statistics.median(times) * 1000:7.1f} ms"
            f"  (min {min(times) * 1000:.1f}, max {max(times) * 1000:.1f})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
