"""Streaming benchmark: N concurrent /chat answers against the loopback Discord (rate limits on) and model.

    python bench/stream_bench.py [--levels 1,20,200] [--tokens 500] [--tps 40] [--ttft 0.2]
                                 [--compare-fixed] [--stop-trials 10]
    python bench/stream_bench.py --cluster [80] [--tokens 500] [--tps 40]

Both fakes run in this process; the bot runs as a subprocess (`python -m bot`, or `python -m bench.run_bot`
for the naive fixed pacer), so its CPU seconds and peak memory are its own. Every timestamp (token writes,
message versions, requests) is this process's time.monotonic(), so they compare directly.

Each stream gets its own channel and the same realistic answer (bench/answer_text.py: words, punctuation,
paragraphs, a code block); each token's character offsets in it tell which tokens any message version shows.
Results go to stdout as one table per level; progress goes to the log.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import os
import re
import resource
import shutil
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/stream_bench.py` puts bench/ on the path, not the repo root
    sys.path.insert(0, str(ROOT))

from bench.answer_text import Answer, answer_tokens  # noqa: E402
from bot.streaming.render import MARKER  # noqa: E402
from fakes.discord import FakeDiscord, FakeInteraction, FakeMessage  # noqa: E402
from fakes.llm_server import FakeLLM, LLMRequest, Scenario  # noqa: E402

log = logging.getLogger("bench")

STOP_EMOJI = "🛑"
STOPPED_BY = "⏹ stopped by"
CHANNELS_PER_GUILD = 500  # Discord's cap on channels in one server
CHANNEL_WINDOW = 5.0  # Discord's channel message budget: 5 writes per 5 s
READY_TIMEOUT = 60.0
EXIT_TIMEOUT = 30.0
STALL_TIMEOUT = 30.0  # give up waiting when nothing at all happened for this long
POLL = 0.2

# Interaction callbacks and token-authenticated webhook routes: exempt from the global limit.
_INTERACTION_ROUTE = re.compile(r"^/(?:interactions/\d+/[^/]+/callback|webhooks/\d+/[^/]+)")


# ---------------------------------------------------------------------------------- setup


@dataclass(frozen=True)
class BotKind:
    name: str
    slug: str
    module: str


STREAMCORD = BotKind("streamcord", "streamcord", "bot")
FIXED = BotKind("fixed 1/s", "fixed", "bench.run_bot")


@dataclass(frozen=True)
class Load:
    tokens: int
    tps: float
    ttft: float

    def scenario(self) -> Scenario:
        return Scenario(tokens=self.token_list(), ttft=self.ttft, tokens_per_second=self.tps)

    def token_list(self) -> list[str]:
        return answer_tokens(self.tokens)

    def answer(self) -> Answer:
        return Answer(self.token_list())

    def timeout(self, streams: int) -> float:
        return self.ttft + self.tokens / self.tps + 60.0 + 0.1 * streams


@dataclass(frozen=True)
class Seat:
    """Where one stream runs: its own channel, asked by its own requester."""

    guild_id: int
    channel_id: int
    user_id: int
    prompt: str


def build_seats(fake: FakeDiscord, count: int) -> list[Seat]:
    seats: list[Seat] = []
    guild = 0
    for i in range(count):
        if i % CHANNELS_PER_GUILD == 0:
            guild = fake.add_guild(f"Bench {i // CHANNELS_PER_GUILD}")
        # A requester per stream: the bot caps answers in progress per member.
        user = fake.add_user(guild, f"Requester {i}")
        seats.append(Seat(guild, fake.add_channel(guild, f"bench-{i}"), user, f"bench stream {i}"))
    return seats


def raise_open_files_limit(streams: int) -> None:
    """Each stream holds sockets in both processes (model + Discord); the bot inherits this limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4 * streams + 1024
    if soft != resource.RLIM_INFINITY and soft < wanted:
        new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        log.info("open-files limit raised from %d to %d", soft, new)


# ---------------------------------------------------------------------------------- the bot


class BotProcess:
    """The bot as a subprocess against the fakes; its log goes to a file next to its database."""

    def __init__(
        self,
        kind: BotKind,
        fake: FakeDiscord,
        llm: FakeLLM,
        workdir: Path,
        tag: str,
        load: Load,
        env: dict[str, str] | None = None,
    ):
        self.kind = kind
        self.log_path = workdir / f"{tag}.log"
        self._fake = fake
        self.db_path = workdir / f"{tag}.sqlite3"
        self._env = dict(
            os.environ,
            DISCORD_TOKEN=fake.token,
            DEFAULT_MODEL="fake-model",
            OPENAI_BASE_URL=llm.base_url,
            OPENAI_API_KEY=llm.api_key,
            DATABASE_PATH=str(self.db_path),
            DISCORD_API_BASE=fake.api_base,
            DISCORD_GATEWAY_URL=fake.gateway_url,
            MAX_TOKENS=str(max(1024, load.tokens)),
            LOG_LEVEL="INFO",
        )
        self._env.update(env or {})
        self._proc: asyncio.subprocess.Process | None = None
        self._ps: psutil.Process | None = None

    async def start(self) -> None:
        with self.log_path.open("wb") as out:
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", self.kind.module, cwd=ROOT, env=self._env, stdout=out, stderr=out
            )
        self._ps = psutil.Process(self._proc.pid)
        await poll_until(self._ready, timeout=READY_TIMEOUT, what=f"{self.kind.name} ready", strict=True)

    def _ready(self) -> bool:
        assert self._proc is not None
        if self._proc.returncode is not None:
            raise RuntimeError(f"bot exited with {self._proc.returncode} at start; see {self.log_path}")
        return (
            self._fake.connected > 0
            and any(c["name"] == "chat" for c in self._fake.commands)
            and "Ready as" in self.log_path.read_text(errors="replace")
        )

    def cpu_seconds(self) -> float:
        assert self._ps is not None
        times = self._ps.cpu_times()
        return times.user + times.system

    def rss_mb(self, *, peak: bool) -> float:
        """The bot's resident memory now, or its peak so far."""
        assert self._proc is not None
        key = "VmHWM:" if peak else "VmRSS:"
        for line in Path(f"/proc/{self._proc.pid}/status").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1]) / 1024
        return math.nan

    def log_counts(self) -> tuple[int, int]:
        lines = self.log_path.read_text(errors="replace").splitlines()
        relevant = [line for line in lines if "voice will NOT be supported" not in line]
        return sum(" WARNING " in line for line in relevant), sum(" ERROR " in line for line in relevant)

    async def stop(self) -> int:
        """SIGTERM, as an operator would; the bot should finish cleanly and exit 0."""
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return -1 if proc is None else proc.returncode
        proc.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(proc.wait(), EXIT_TIMEOUT)
        except TimeoutError:
            log.error("%s did not exit within %.0f s of SIGTERM; killing it", self.kind.name, EXIT_TIMEOUT)
            proc.kill()
            await proc.wait()
            return -9


async def poll_until(
    predicate: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    progress: Callable[[], object] | None = None,
    strict: bool = False,
) -> bool:
    """Re-check ``predicate`` every POLL seconds. False (or TimeoutError if strict) on timeout, or when
    ``progress()`` has not changed for STALL_TIMEOUT seconds."""
    start = last_change = time.monotonic()
    last = progress() if progress else None
    while not predicate():
        now = time.monotonic()
        if progress is not None:
            current = progress()
            if current != last:
                last, last_change = current, now
        stalled = now - last_change > STALL_TIMEOUT
        if now - start > timeout or stalled:
            reason = "no progress" if stalled else "timeout"
            if strict:
                raise TimeoutError(f"{what}: {reason} after {now - start:.0f} s")
            log.error("%s: gave up (%s) after %.0f s", what, reason, now - start)
            return False
        await asyncio.sleep(POLL)
    return True


def finished_usage(db_path: Path) -> int:
    """Usage rows the bot has closed (any final status): the stream's accounting is done."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=1.0)) as db:
            return db.execute("SELECT COUNT(*) FROM usage WHERE status != 'streaming'").fetchone()[0]
    except sqlite3.Error:
        return 0


# ---------------------------------------------------------------------------------- reading replies


def reply_pages(fake: FakeDiscord, channel_id: int) -> list[FakeMessage]:
    return [
        m
        for m in fake.channel_messages(channel_id)
        if m.author_id == fake.bot_user_id and not m.ephemeral and not m.deleted
    ]


def first_seen(pages: Sequence[FakeMessage], answer: Answer, count: int) -> list[float | None]:
    """For each token, when it first appeared in any version of any page."""
    spans = sorted(
        (version.at, *span)
        for index, page in enumerate(pages)
        for version in page.versions
        if (span := answer.span(index, version.content)) is not None
    )
    seen: list[float | None] = [None] * count
    following = list(range(count + 1))  # next token index not yet seen (path-compressed)

    def unseen_from(i: int) -> int:
        root = i
        while following[root] != root:
            root = following[root]
        while following[i] != root:
            following[i], i = root, following[i]
        return root

    for at, lo, hi in spans:
        i = unseen_from(min(lo, count))
        while i <= min(hi, count - 1):
            seen[i] = at
            following[i] = i + 1
            i = unseen_from(i + 1)
    return seen


def bot_stop_button(fake: FakeDiscord, pages: Sequence[FakeMessage]) -> bool:
    return bool(pages) and fake.bot_user_id in pages[0].reactions.get(STOP_EMOJI, set())


def reply_final(fake: FakeDiscord, channel_id: int) -> bool:
    pages = reply_pages(fake, channel_id)
    return (
        bool(pages)
        and not any(p.content.endswith(MARKER) for p in pages)
        and not bot_stop_button(fake, pages)
    )


def requests_by_prompt(llm: FakeLLM) -> dict[str, LLMRequest]:
    return {str(r.body["messages"][-1]["content"]): r for r in llm.requests}


# ---------------------------------------------------------------------------------- statistics


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def median_p95(values: Sequence[float]) -> tuple[float, float]:
    return (statistics.median(values) if values else math.nan), percentile(values, 95)


def max_in_window(times: Sequence[float], width: float) -> int:
    """Most events in any half-open window [t, t + width)."""
    ordered = sorted(times)
    best = start = 0
    for end, at in enumerate(ordered):
        while ordered[start] <= at - width:
            start += 1
        best = max(best, end - start + 1)
    return best


def jain(values: Sequence[float]) -> float:
    total = sum(values)
    squares = sum(v * v for v in values)
    return total * total / (len(values) * squares) if squares else math.nan


def max_in_fixed_windows(times: Sequence[float], width: float) -> int:
    """Most events in one fixed window as Discord (and the fake) counts the global limit: a window opens at
    the first event after the previous one closed."""
    best = count = 0
    end = -math.inf
    for at in sorted(times):
        if at >= end:
            end, count = at + width, 0
        count += 1
        best = max(best, count)
    return best


def is_global(path: str) -> bool:
    return _INTERACTION_ROUTE.match(path) is None


def rejected_by(fake: FakeDiscord) -> dict[str, int]:
    """429s by the limit that refused them: "global", or the route bucket's family."""
    return dict(
        Counter(
            "global" if r.headers.get("X-RateLimit-Global") == "true" else r.bucket_key.split(":")[0]
            for r in fake.requests
            if r.status == 429
        )
    )


# ---------------------------------------------------------------------------------- load levels


@dataclass
class LevelFigures:
    bot: str
    streams: int
    tokens: int  # streamed by the model in total
    wall_s: float
    first_text_ms: tuple[float, float]  # median, p95
    first_visible_ms: tuple[float, float]  # /chat → first text visible (queue wait included)
    ack_ms: tuple[float, float]  # /chat → interaction answered (first text or placeholder)
    queue_ms: tuple[float, float]  # /chat → the model is asked (waiting for a free slot included)
    lag_ms: tuple[float, float]
    edits_mean: float
    max_writes_5s: int  # message versions, creates included
    # Per channel budget (Discord counts creates and edits in separate buckets); the interaction response,
    # which neither counts, left out.
    max_creates_5s: int
    max_edits_5s: int
    global_rps: tuple[float, float]  # peak (sliding 1 s), mean
    all_rps: tuple[float, float]
    n429: int
    by_bucket_429: dict[str, int]
    fairness: float
    incomplete: int
    unacked: int  # interactions never answered (the 3 s deadline passed)
    cpu_s: float
    cpu_per_1k: float
    rss_mb: float
    ready_rss_mb: float  # once ready, before the load: what start-up and the imports hold
    bench_cpu_s: float
    exit_code: int
    log_warnings: int
    log_errors: int


@dataclass
class RunWindow:
    start: float
    end: float
    bot_cpu_s: float
    bench_cpu_s: float


async def run_level(kind: BotKind, streams: int, load: Load, workdir: Path) -> LevelFigures:
    async with FakeDiscord() as fake, FakeLLM(default=load.scenario()) as llm:
        seats = build_seats(fake, streams)
        bot = BotProcess(kind, fake, llm, workdir, f"{kind.slug}-{streams}", load)
        await bot.start()
        try:
            ready_rss = bot.rss_mb(peak=False)
            interactions, window = await drive_load(fake, llm, bot, seats, load)
            peak_rss = bot.rss_mb(peak=True)
        finally:
            exit_code = await bot.stop()
        warnings, errors = bot.log_counts()
        figures = (peak_rss, ready_rss, exit_code, warnings, errors)
        return measure(kind, fake, llm, seats, interactions, window, load, *figures)


async def drive_load(
    fake: FakeDiscord, llm: FakeLLM, bot: BotProcess, seats: list[Seat], load: Load
) -> tuple[list[FakeInteraction], RunWindow]:
    """Issue every /chat at once, then wait until every reply is final and its usage recorded."""
    me = psutil.Process()
    cpu0, bench0 = bot.cpu_seconds(), sum(me.cpu_times()[:2])
    start = time.monotonic()
    interactions = [
        await fake.run_slash_command(s.guild_id, s.channel_id, s.user_id, "chat", {"prompt": s.prompt})
        for s in seats
    ]
    pending = {s.channel_id for s in seats}
    usage_done = 0

    def all_done() -> bool:
        pending.difference_update([c for c in pending if reply_final(fake, c)])
        return not pending and usage_done == len(seats)

    async def watch_usage() -> None:
        nonlocal usage_done
        while usage_done < len(seats):
            usage_done = await asyncio.to_thread(finished_usage, bot.db_path)
            await asyncio.sleep(POLL)

    watcher = asyncio.create_task(watch_usage())
    try:
        await poll_until(
            all_done,
            timeout=load.timeout(len(seats)),
            what=f"{len(seats)} replies final",
            progress=lambda: (len(fake.requests), sum(r.tokens_sent for r in llm.requests), usage_done),
        )
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
    end = time.monotonic()
    window = RunWindow(start, end, bot.cpu_seconds() - cpu0, sum(me.cpu_times()[:2]) - bench0)
    return interactions, window


def measure(
    kind: BotKind,
    fake: FakeDiscord,
    llm: FakeLLM,
    seats: list[Seat],
    interactions: list[FakeInteraction],
    window: RunWindow,
    load: Load,
    rss_mb: float,
    ready_rss_mb: float,
    exit_code: int,
    log_warnings: int,
    log_errors: int,
) -> LevelFigures:
    by_prompt = requests_by_prompt(llm)
    answer = load.answer()
    first_text: list[float] = []
    first_visible: list[float] = []
    lags: list[float] = []
    edits: list[int] = []
    max_writes = max_creates = max_edits = incomplete = 0
    for seat, interaction in zip(seats, interactions, strict=True):
        pages = reply_pages(fake, seat.channel_id)
        request = by_prompt.get(seat.prompt)
        edits.append(sum(len(p.versions) - 1 for p in pages))
        writes = [v.at for p in pages for v in p.versions]
        max_writes = max(max_writes, max_in_window(writes, CHANNEL_WINDOW))
        creates = [p.versions[0].at for p in pages if p.id != interaction.message_id]
        max_creates = max(max_creates, max_in_window(creates, CHANNEL_WINDOW))
        changes = [v.at for p in pages for v in p.versions[1:]]
        max_edits = max(max_edits, max_in_window(changes, CHANNEL_WINDOW))
        incomplete += not answer.complete([p.content for p in pages])
        if request is None or request.first_token_at is None:
            continue
        seen = first_seen(pages, answer, len(request.token_times))
        shown = [at for at in seen if at is not None]
        if shown:
            first_text.append((min(shown) - request.first_token_at) * 1000)
            first_visible.append((min(shown) - interaction.created_at) * 1000)
        lags.extend(
            (at - written) * 1000
            for at, (written, _) in zip(seen, request.token_times, strict=True)
            if at is not None
        )
    records = [r for r in fake.requests if window.start <= r.at <= window.end]
    tokens = sum(r.tokens_sent for r in llm.requests)
    return LevelFigures(
        bot=kind.name,
        streams=len(seats),
        tokens=tokens,
        wall_s=window.end - window.start,
        first_text_ms=median_p95(first_text),
        first_visible_ms=median_p95(first_visible),
        ack_ms=median_p95(
            [(i.responded_at - i.created_at) * 1000 for i in interactions if i.responded_at is not None]
        ),
        queue_ms=median_p95(
            [
                (by_prompt[s.prompt].started_at - i.created_at) * 1000
                for s, i in zip(seats, interactions, strict=True)
                if s.prompt in by_prompt
            ]
        ),
        lag_ms=median_p95(lags),
        edits_mean=statistics.fmean(edits),
        max_writes_5s=max_writes,
        max_creates_5s=max_creates,
        max_edits_5s=max_edits,
        global_rps=request_rates([r.at for r in records if is_global(r.path)], window),
        all_rps=request_rates([r.at for r in records], window),
        n429=fake.count_429(),
        by_bucket_429=rejected_by(fake),
        fairness=jain(edits),
        incomplete=incomplete,
        unacked=sum(i.responded_at is None for i in interactions),
        cpu_s=window.bot_cpu_s,
        cpu_per_1k=window.bot_cpu_s / tokens * 1000 if tokens else math.nan,
        rss_mb=rss_mb,
        ready_rss_mb=ready_rss_mb,
        bench_cpu_s=window.bench_cpu_s,
        exit_code=exit_code,
        log_warnings=log_warnings,
        log_errors=log_errors,
    )


def request_rates(times: Sequence[float], window: RunWindow) -> tuple[float, float]:
    duration = window.end - window.start
    return float(max_in_window(times, 1.0)), (len(times) / duration if duration > 0 else math.nan)


# ---------------------------------------------------------------------------------- stop trials


@dataclass
class StopFigures:
    bot: str
    trials: int
    stopped: int  # trials whose upstream request was disconnected
    disconnect_ms: tuple[float, float]
    final_ms: tuple[float, float]
    tokens_after: int
    exit_code: int


async def run_stop_trials(kind: BotKind, trials: int, load: Load, workdir: Path) -> StopFigures:
    """One stream at a time: the requester reacts 🛑 once the reply is visibly streaming (after 1-3 edits,
    so the stop lands at different points of the channel budget)."""
    # Long enough that no answer can end on its own before the reaction.
    slow = Load(tokens=max(load.tokens, 400), tps=load.tps, ttft=load.ttft)
    async with FakeDiscord() as fake, FakeLLM(default=slow.scenario()) as llm:
        seats = build_seats(fake, trials)
        bot = BotProcess(kind, fake, llm, workdir, f"{kind.slug}-stop", slow)
        await bot.start()
        disconnects: list[float] = []
        finals: list[float] = []
        try:
            for i, seat in enumerate(seats):
                outcome = await stop_trial(fake, llm, seat, slow.answer(), edits_before=1 + i % 3)
                if outcome is not None:
                    disconnects.append(outcome[0])
                    if outcome[1] is not None:
                        finals.append(outcome[1])
        finally:
            exit_code = await bot.stop()
        return StopFigures(
            bot=kind.name,
            trials=trials,
            stopped=len(disconnects),
            disconnect_ms=median_p95(disconnects),
            final_ms=median_p95(finals),
            tokens_after=sum(r.tokens_after_disconnect for r in llm.requests),
            exit_code=exit_code,
        )


async def stop_trial(
    fake: FakeDiscord, llm: FakeLLM, seat: Seat, answer: Answer, edits_before: int
) -> tuple[float, float | None] | None:
    """Reaction → upstream disconnect and reaction → final "stopped by" edit, in ms (None: not stopped)."""
    await fake.run_slash_command(
        seat.guild_id, seat.channel_id, seat.user_id, "chat", {"prompt": seat.prompt}
    )

    def streaming() -> bool:
        pages = reply_pages(fake, seat.channel_id)
        return (
            bot_stop_button(fake, pages)
            and len(pages[0].versions) > edits_before
            and answer.span(len(pages) - 1, pages[-1].content) is not None
        )

    await fake.wait_for(streaming, timeout=30, what=f"{seat.prompt} visibly streaming")
    request = requests_by_prompt(llm)[seat.prompt]
    message_id = reply_pages(fake, seat.channel_id)[0].id
    reacted_at = time.monotonic()
    await fake.add_reaction(seat.channel_id, message_id, seat.user_id, STOP_EMOJI)
    await llm.wait_for(
        lambda: request.disconnected_at is not None or request.finished_at is not None,
        timeout=15,
        what=f"{seat.prompt} upstream closed",
    )
    if request.disconnected_at is None:
        log.error("%s: the model stream finished instead of being stopped", seat.prompt)
        return None
    with contextlib.suppress(TimeoutError):
        await fake.wait_for(
            lambda: stopped_version_at(fake, seat.channel_id) is not None,
            timeout=30,
            what=f"{seat.prompt} final edit",
        )
    final_at = stopped_version_at(fake, seat.channel_id)
    return (
        (request.disconnected_at - reacted_at) * 1000,
        None if final_at is None else (final_at - reacted_at) * 1000,
    )


def stopped_version_at(fake: FakeDiscord, channel_id: int) -> float | None:
    times = [v.at for p in reply_pages(fake, channel_id) for v in p.versions if STOPPED_BY in v.content]
    return min(times) if times else None


# ---------------------------------------------------------------------------------- output


@dataclass(frozen=True)
class Row:
    label: str
    value: Callable[[LevelFigures], str]
    target: str = ""
    met: Callable[[LevelFigures], bool] | None = None


def _pair(values: tuple[float, float], unit: str = "ms") -> str:
    return f"{values[0]:.0f} / {values[1]:.0f} {unit}"


def level_rows(streams: int) -> list[Row]:
    if streams >= 200:
        first_target, first_ok = "p95 < 1000 ms", lambda f: f.first_text_ms[1] < 1000
    else:
        first_target, first_ok = "≤ 100 ms", lambda f: f.first_text_ms[1] <= 100
    lag_row = (
        Row(
            "display lag median / p95",
            lambda f: _pair(f.lag_ms),
            "p95 < 1200 ms",
            lambda f: f.lag_ms[1] < 1200,
        )
        if streams == 1
        else Row("display lag median / p95", lambda f: _pair(f.lag_ms))
    )
    return [
        Row("first text after 1st token med / p95", lambda f: _pair(f.first_text_ms), first_target, first_ok),
        Row("first text after /chat med / p95", lambda f: _pair(f.first_visible_ms), "(queue included)"),
        Row(
            "/chat answered (ack) med / p95",
            lambda f: _pair(f.ack_ms),
            "< 3000 ms",
            lambda f: f.ack_ms[1] < 3000,
        ),
        Row("/chat → model asked med / p95", lambda f: _pair(f.queue_ms), "(queue wait)"),
        lag_row,
        Row("edits per stream (mean)", lambda f: f"{f.edits_mean:.1f}"),
        Row("max writes in 5 s, any channel", lambda f: str(f.max_writes_5s), "(incl. creates)"),
        Row(
            "  creates / edits (each its own bucket)",
            lambda f: f"{f.max_creates_5s} / {f.max_edits_5s}",
            "≤ 5 each",
            lambda f: max(f.max_creates_5s, f.max_edits_5s) <= 5,
        ),
        Row(
            "global-limit req/s peak / mean",
            lambda f: _pair(f.global_rps, "/s"),
            "peak ≤ 50",
            lambda f: f.global_rps[0] <= 50,
        ),
        Row("all-routes req/s peak / mean", lambda f: _pair(f.all_rps, "/s")),
        Row("429 responses", lambda f: _count_429(f), "0", lambda f: f.n429 == 0),
        Row("Jain fairness of edits", lambda f: f"{f.fairness:.3f}", "≥ 0.95", lambda f: f.fairness >= 0.95),
        Row("incomplete final replies", lambda f: str(f.incomplete), "0", lambda f: f.incomplete == 0),
        Row("interactions never acked", lambda f: str(f.unacked), "0", lambda f: f.unacked == 0),
        Row("tokens streamed", lambda f: str(f.tokens)),
        Row("wall time to all final", lambda f: f"{f.wall_s:.1f} s"),
        Row("bot CPU", lambda f: f"{f.cpu_s:.2f} s"),
        Row("bot CPU per 1,000 tokens", lambda f: f"{f.cpu_per_1k:.3f} s", "flat ≤ 2× (20→1000)"),
        Row("bot peak RSS (RSS once ready)", lambda f: f"{f.rss_mb:.0f} MB ({f.ready_rss_mb:.0f})"),
        Row("bench (fakes) CPU", lambda f: f"{f.bench_cpu_s:.2f} s"),
        Row("bot log warnings / errors", lambda f: f"{f.log_warnings} / {f.log_errors}"),
        Row("bot exit code after SIGTERM", lambda f: str(f.exit_code), "0", lambda f: f.exit_code == 0),
    ]


def _count_429(f: LevelFigures) -> str:
    if not f.n429:
        return "0"
    detail = ", ".join(f"{bucket} {n}" for bucket, n in sorted(f.by_bucket_429.items()))
    return f"{f.n429} ({detail})"


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def level_table(figures: Sequence[LevelFigures], load: Load) -> str:
    streams = figures[0].streams
    rows = []
    for row in level_rows(streams):
        cells = [row.label]
        for f in figures:
            mark = "" if row.met is None else (" ✓" if row.met(f) else " ✗")
            cells.append(row.value(f) + mark)
        rows.append([*cells, row.target])
    title = f"== {streams} stream(s) × {load.tokens} tokens at {load.tps:g} tok/s, ttft {load.ttft:g} s =="
    return title + "\n" + format_table(["metric", *(f.bot for f in figures), "target"], rows)


def cpu_flatness(results: dict[str, list[LevelFigures]]) -> str:
    lines = []
    for bot, figures in results.items():
        scaled = [f for f in figures if f.streams >= 20 and not math.isnan(f.cpu_per_1k)]
        if len(scaled) < 2:
            continue
        values = [f.cpu_per_1k for f in scaled]
        ratio = max(values) / min(values)
        steps = " → ".join(f"{f.streams}: {f.cpu_per_1k:.3f}" for f in scaled)
        verdict = "✓" if ratio <= 2 else "✗"
        lines.append(f"{bot}: CPU s per 1,000 tokens {steps} (max/min {ratio:.2f}; target ≤ 2×) {verdict}")
    return "\n".join(lines)


def stop_table(figures: Sequence[StopFigures]) -> str:
    rows = [
        ["trials stopped upstream", *(f"{f.stopped} / {f.trials}" for f in figures), "all"],
        [
            "reaction → disconnect med / p95",
            *(_pair(f.disconnect_ms) + (" ✓" if f.disconnect_ms[1] < 100 else " ✗") for f in figures),
            "p95 < 100 ms",
        ],
        ["reaction → final edit med / p95", *(_pair(f.final_ms) for f in figures), ""],
        [
            "tokens after disconnect (sum)",
            *(f"{f.tokens_after}" + (" ✓" if f.tokens_after == 0 else " ✗") for f in figures),
            "0",
        ],
        ["bot exit code after SIGTERM", *(str(f.exit_code) for f in figures), "0"],
    ]
    return "== 🛑 stop trials ==\n" + format_table(["metric", *(f.bot for f in figures), "target"], rows)


# ---------------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--levels",
        type=lambda s: [int(x) for x in s.split(",") if x],
        default=[1, 20, 200],
        help="concurrent streams per level, comma-separated (default 1,20,200; issue 5: 20,200,1000)",
    )
    parser.add_argument("--tokens", type=int, default=500, help="tokens per answer (default 500)")
    parser.add_argument("--tps", type=float, default=40.0, help="model tokens per second (default 40)")
    parser.add_argument("--ttft", type=float, default=0.2, help="model time to first token, s (default 0.2)")
    parser.add_argument(
        "--compare-fixed", action="store_true", help="also run a naive fixed 1-edit-per-second pacer"
    )
    parser.add_argument("--stop-trials", type=int, default=10, help="🛑 trials (default 10; 0: skip)")
    parser.add_argument("--keep-logs", action="store_true", help="keep the bot logs and databases")
    parser.add_argument(
        "--cluster",
        type=int,
        nargs="?",
        const=80,
        metavar="STREAMS",
        help="instead: PostgreSQL + 2 sharded processes streaming @mention answers (default 80, about 80"
        " requests/s of demand), behind the REST proxy and without it (bench/cluster_bench.py)",
    )
    return parser.parse_args(argv)


async def run(args: argparse.Namespace) -> None:
    load = Load(args.tokens, args.tps, args.ttft)
    if args.cluster is not None:
        from bench.cluster_bench import run_cluster  # it builds on this module

        await run_cluster(args.cluster, load, args.keep_logs)
        return
    kinds = [STREAMCORD, FIXED] if args.compare_fixed else [STREAMCORD]
    raise_open_files_limit(max(args.levels, default=1))
    workdir = Path(tempfile.mkdtemp(prefix="streamcord-bench-"))
    results: dict[str, list[LevelFigures]] = {k.name: [] for k in kinds}
    clean = True
    for streams in args.levels:
        figures = []
        for kind in kinds:
            log.info("level %d: %s", streams, kind.name)
            f = await run_level(kind, streams, load, workdir)
            results[kind.name].append(f)
            figures.append(f)
            clean = clean and f.exit_code == 0 and f.incomplete == 0
        print(level_table(figures, load) + "\n", flush=True)
    flat = cpu_flatness(results)
    if flat:
        print(flat + "\n", flush=True)
    if args.stop_trials > 0:
        stops = []
        for kind in kinds:
            log.info("stop trials: %s", kind.name)
            stop = await run_stop_trials(kind, args.stop_trials, load, workdir)
            stops.append(stop)
            clean = clean and stop.exit_code == 0 and stop.stopped == stop.trials
        print(stop_table(stops), flush=True)
    if clean and not args.keep_logs:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        log.warning("bot logs and databases kept in %s", workdir)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    logging.getLogger("fakes").setLevel(logging.WARNING)
    asyncio.run(run(parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
