"""Cluster benchmark (`python bench/stream_bench.py --cluster`): PostgreSQL, two bot processes with 2 of 4
shards each, @mention answers in several servers, with the REST proxy and without it, side by side.

Each stream is an @mention in a channel of its own, so each asks about one request per second of Discord
(the channel budget): N streams are about N requests/s of demand, past the global 50/s at 80. Behind the
proxy (proxy/launch.mjs, `DISCORD_REST_PROXY=true`) the proxy holds the global limit for both processes;
without it each process holds its own 50/s and together they exceed Discord's. Times are measured from the
user's message. PostgreSQL is a throwaway server (tests/postgres.py), the proxy runs as the tests run it
(tests/proxy.py: node and `npm ci --prefix proxy`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.stream_bench import (
    STREAMCORD,
    BotProcess,
    Load,
    RunWindow,
    Seat,
    first_seen,
    format_table,
    is_global,
    max_in_fixed_windows,
    median_p95,
    poll_until,
    raise_open_files_limit,
    rejected_by,
    reply_final,
    reply_pages,
    request_rates,
)
from fakes.discord import FakeDiscord
from fakes.llm_server import FakeLLM
from tests.postgres import PostgresServer, find_bin_dir
from tests.proxy import rest_proxy

log = logging.getLogger("bench.cluster")

SHARDS = 4
PROCESSES = {"a": "0,1", "b": "2,3"}
GUILDS = 8  # two per shard


@dataclass
class ClusterFigures:
    mode: str
    streams: int
    global_rps: tuple[float, float]  # peak (sliding 1 s), mean, at the loopback Discord
    global_window_peak: int  # most in one of Discord's fixed 1-s global windows (429s included)
    n429: int
    by_bucket_429: dict[str, int]
    first_text_ms: tuple[float, float]  # the user's message → first answer text visible
    final_ms: tuple[float, float]  # the user's message → the reply final
    edits_mean: float
    incomplete: int
    op9: int
    exit_codes: list[int]


def build_seats(fake: FakeDiscord, streams: int) -> list[Seat]:
    """GUILDS servers spread over the shards, one channel and one asker per stream."""
    guilds = [fake.add_guild(f"Bench {g}", shard=(g % SHARDS, SHARDS)) for g in range(GUILDS)]
    users = [fake.add_user(g, "Requester") for g in guilds]
    return [
        Seat(
            guilds[i % GUILDS], fake.add_channel(guilds[i % GUILDS], f"bench-{i}"), users[i % GUILDS], f"q{i}"
        )
        for i in range(streams)
    ]


@contextlib.asynccontextmanager
async def maybe_proxy(fake: FakeDiscord, proxied: bool, workdir: Path) -> AsyncIterator[dict[str, str]]:
    """The bots' REST settings: through the proxy in front of the loopback Discord, or straight to it."""
    if not proxied:
        yield {}
        return
    async with rest_proxy(fake.api_base.removesuffix("/v10"), workdir / "proxy.log") as base:
        yield {"DISCORD_API_BASE": base, "DISCORD_REST_PROXY": "true"}


async def run_mode(
    proxied: bool, streams: int, load: Load, postgres: PostgresServer, workdir: Path
) -> ClusterFigures:
    mode = "behind the proxy" if proxied else "without the proxy"
    slug = "proxy" if proxied else "direct"
    async with (
        FakeDiscord(shards=SHARDS, max_concurrency=2, identify_interval=5.0) as fake,
        FakeLLM(default=load.scenario()) as llm,
        maybe_proxy(fake, proxied, workdir) as rest,
    ):
        seats = build_seats(fake, streams)
        env = rest | {"DATABASE_URL": await postgres.create_database(), "SHARD_COUNT": str(SHARDS)}
        bots = [
            BotProcess(STREAMCORD, fake, llm, workdir, f"{slug}-{name}", load, env | {"SHARD_IDS": ids})
            for name, ids in PROCESSES.items()
        ]
        try:
            await asyncio.gather(*(bot.start() for bot in bots))
            log.info("%s: %d streams", mode, streams)
            questions, window = await drive(fake, llm, seats, load)
        finally:
            exit_codes = [await bot.stop() for bot in bots]
        return measure(mode, fake, seats, questions, window, load, exit_codes)


async def drive(
    fake: FakeDiscord, llm: FakeLLM, seats: list[Seat], load: Load
) -> tuple[list[int], RunWindow]:
    """Every asker mentions the bot at once; returns their message ids once every reply is final."""
    start = time.monotonic()
    questions = [
        await fake.post_message(s.channel_id, s.user_id, f"<@{fake.bot_user_id}> {s.prompt}") for s in seats
    ]
    pending = {s.channel_id for s in seats}

    def all_final() -> bool:
        pending.difference_update([c for c in pending if reply_final(fake, c)])
        return not pending

    await poll_until(
        all_final,
        timeout=load.timeout(len(seats)),
        what=f"{len(seats)} replies final",
        progress=lambda: (len(fake.requests), sum(r.tokens_sent for r in llm.requests)),
    )
    return questions, RunWindow(start, time.monotonic(), 0.0, 0.0)


def measure(
    mode: str,
    fake: FakeDiscord,
    seats: list[Seat],
    questions: list[int],
    window: RunWindow,
    load: Load,
    exit_codes: list[int],
) -> ClusterFigures:
    answer = load.answer()
    count = len(load.token_list())
    first_text: list[float] = []
    finals: list[float] = []
    edits: list[int] = []
    incomplete = 0
    for seat, question in zip(seats, questions, strict=True):
        asked_at = fake.messages[question].versions[0].at
        pages = reply_pages(fake, seat.channel_id)
        edits.append(sum(len(p.versions) - 1 for p in pages))
        incomplete += not answer.complete([p.content for p in pages])
        shown = [at for at in first_seen(pages, answer, count) if at is not None]
        if shown:
            first_text.append((min(shown) - asked_at) * 1000)
        if pages:
            finals.append((max(p.versions[-1].at for p in pages) - asked_at) * 1000)
    records = [r for r in fake.requests if window.start <= r.at <= window.end]
    global_times = [r.at for r in records if is_global(r.path)]
    return ClusterFigures(
        mode=mode,
        streams=len(seats),
        global_rps=request_rates(global_times, window),
        global_window_peak=max_in_fixed_windows(global_times, 1.0),
        n429=fake.count_429(),
        by_bucket_429=rejected_by(fake),
        first_text_ms=median_p95(first_text),
        final_ms=median_p95(finals),
        edits_mean=statistics.fmean(edits) if edits else 0.0,
        incomplete=incomplete,
        op9=fake.identify_violations,
        exit_codes=exit_codes,
    )


def cluster_table(figures: Sequence[ClusterFigures], load: Load) -> str:
    def pair(values: tuple[float, float], unit: str) -> str:
        return f"{values[0]:.0f} / {values[1]:.0f} {unit}"

    def mark(ok: bool) -> str:
        return " ✓" if ok else " ✗"

    def in_window(f: ClusterFigures) -> str:
        return str(f.global_window_peak) + mark(f.global_window_peak <= 50)

    def count_429(f: ClusterFigures) -> str:
        detail = ", ".join(f"{bucket} {n}" for bucket, n in sorted(f.by_bucket_429.items()))
        return f"{f.n429}" + (f" ({detail})" if detail else "") + mark(f.n429 == 0)

    rows = [
        ["global requests in one 1-s Discord window", *(in_window(f) for f in figures), "≤ 50"],
        ["global req/s, any 1 s: peak / mean", *(pair(f.global_rps, "/s") for f in figures), ""],
        ["429 responses from Discord", *(count_429(f) for f in figures), "0"],
        ["message → first text med / p95", *(pair(f.first_text_ms, "ms") for f in figures), ""],
        ["message → final reply med / p95", *(pair(f.final_ms, "ms") for f in figures), ""],
        ["edits per stream (mean)", *(f"{f.edits_mean:.1f}" for f in figures), ""],
        ["incomplete final replies", *(str(f.incomplete) + mark(f.incomplete == 0) for f in figures), "0"],
        ["IDENTIFYs refused (op 9)", *(str(f.op9) + mark(f.op9 == 0) for f in figures), "0"],
        ["bot exit codes after SIGTERM", *(", ".join(map(str, f.exit_codes)) for f in figures), "0, 0"],
    ]  # fmt: skip
    streams = figures[0].streams
    title = (
        f"== cluster: {streams} @mention streams in {GUILDS} servers, 2 processes × 2 of {SHARDS} shards, "
        f"PostgreSQL; {load.tokens} tokens at {load.tps:g} tok/s =="
    )
    return title + "\n" + format_table(["metric", *(f.mode for f in figures), "target"], rows)


async def run_cluster(streams: int, load: Load, keep_logs: bool) -> None:
    bin_dir = find_bin_dir()
    if bin_dir is None:
        raise SystemExit("--cluster needs PostgreSQL (Debian's postgresql package): not installed")
    raise_open_files_limit(streams)
    workdir = Path(tempfile.mkdtemp(prefix="streamcord-cluster-bench-"))
    postgres = PostgresServer(bin_dir)
    await asyncio.to_thread(postgres.start)
    try:
        figures = [await run_mode(proxied, streams, load, postgres, workdir) for proxied in (True, False)]
    finally:
        await asyncio.to_thread(postgres.stop)
        postgres.remove()
    print(cluster_table(figures, load), flush=True)
    clean = all(f.exit_codes == [0, 0] and f.incomplete == 0 for f in figures)
    if clean and not keep_logs:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        log.warning("bot and proxy logs kept in %s", workdir)
