"""Chaos soak: the real bot (`python -m bot`, a subprocess) under 40-60 concurrent answers against the
loopback Discord and model servers, with faults injected at random (seeded, bounded in time, loopback only).

Injected: gateway drops (resumable and not), Discord 5xx bursts and latency spikes, permanent 4xx refusals
(403 50013, 400 50083), model 5xx/429/dropped/hung/error streams, the database locked for 6 s, 🛑 by
requesters, moderators and strangers, SIGTERM and SIGKILL with restarts under load. After quiescing it
checks the invariants and prints them as figures; the exit status is 1 if any was violated.

    python bench/chaos.py --duration 600 --seed 1
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import re
import signal
import socket
import sqlite3
import statistics
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/chaos.py` puts bench/ on the path, not the repo root
    sys.path.insert(0, str(ROOT))

from bot.status import split_status  # noqa: E402
from bot.streaming.render import MARKER  # noqa: E402
from fakes import bot_env  # noqa: E402
from fakes.discord import FakeDiscord, FakeInteraction  # noqa: E402
from fakes.llm_server import FakeLLM, Scenario  # noqa: E402

STOP = "🛑"
TERM_BOUND = 45.0  # SHUTDOWN_TIMEOUT (10 s) plus every bounded close (5 s each) and a margin
READY_TIMEOUT = 60.0
ORPHANS_TIMEOUT = 300.0
MAX_CHARS = 1800  # every answer fits one message, so a reply's text can be compared with the model's
_TAG = re.compile(r"\bq(\d+)\b")


@dataclass
class Ask:
    tag: int
    channel: int
    user: int
    mention: int | None = None  # the question message, for a mention
    interaction: FakeInteraction | None = None  # for /chat


@dataclass
class Figures:
    asks: int = 0
    injected: Counter[str] = field(default_factory=Counter)
    terms: list[tuple[int | None, float]] = field(default_factory=list)  # (exit status, seconds)
    kills: int = 0
    loop_lag: list[float] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Soak:
    def __init__(self, seed: int, duration: float, concurrency: int, workdir: Path) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.duration = duration
        self.concurrency = concurrency
        self.workdir = workdir
        self.db_path = workdir / "chaos.sqlite3"
        self.log_path = workdir / "bot.log"
        self.metrics_port = free_port()
        self.discord = FakeDiscord()
        self.llm = FakeLLM()
        self.llm.responder = self._scenario
        self.asks: list[Ask] = []
        self.refused_ids: set[int] = set()  # replies Discord was told to refuse for good
        self.figures = Figures()
        self.proc: asyncio.subprocess.Process | None = None
        self._tags = 0

    # ----------------------------------------------------------------- the world

    def build(self) -> None:
        d = self.discord
        self.guild = d.add_guild("Chaos")
        channels = [d.add_channel(self.guild, f"c{i}") for i in range(6)]
        threads = [d.add_thread(self.guild, channels[i], f"t{i}") for i in range(2)]
        self.channels = channels + threads
        self.users = [d.add_user(self.guild, f"user{i}") for i in range(40)]
        self.mod = d.add_user(self.guild, "Mod", manage_messages=True)
        self.stranger = d.add_user(self.guild, "Stranger")

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            **bot_env(self.discord, self.llm),
            "DATABASE_PATH": str(self.db_path),
            "LLM_MAX_RETRIES": "0",
            "LLM_TIMEOUT": "5",
            "METRICS_PORT": str(self.metrics_port),
            "LOG_LEVEL": "INFO",
        }

    def _scenario(self, body: dict[str, Any]) -> Scenario:
        """What the model does for a question, drawn from the seed and its tag (so a rerun repeats it)."""
        match = _TAG.search(str(body["messages"][-1]["content"]))
        rng = random.Random(f"{self.seed}:{match.group(1) if match else 'none'}")
        text = " ".join(f"w{i}" for i in range(rng.randint(10, 250)))[:MAX_CHARS]
        pace = rng.uniform(15, 60)
        roll = rng.random()
        if roll < 0.04:
            return Scenario(status=rng.choice([500, 429, 503]))
        if roll < 0.07:
            return Scenario(text=text, tokens_per_second=pace, drop_after=rng.randint(0, 20))
        if roll < 0.09:
            return Scenario(
                text=text, tokens_per_second=pace, hang_after=rng.randint(0, 20)
            )  # keep-alive only
        if roll < 0.11:
            return Scenario(text=text, tokens_per_second=pace, error_after=rng.randint(1, 20))
        return Scenario(text=text, tokens_per_second=pace, ttft=rng.uniform(0, 1.5))

    # ----------------------------------------------------------------- the bot process

    async def start_bot(self) -> None:
        ready_before = self.discord.ready_count
        with self.log_path.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", cwd=self.workdir, env=self.env(), stdout=log, stderr=log
            )
        await self.discord.wait_for(
            lambda: (
                self.discord.ready_count > ready_before
                or self.proc is None
                or self.proc.returncode is not None
            ),
            timeout=READY_TIMEOUT,
            what="bot connected",
        )
        if self.proc.returncode is not None:
            raise RuntimeError(f"the bot exited with {self.proc.returncode} at start; see {self.log_path}")

    async def term_bot(self) -> None:
        assert self.proc is not None
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code: int | None = await asyncio.wait_for(self.proc.wait(), TERM_BOUND)
        except TimeoutError:
            code = None
            self.proc.kill()
            await self.proc.wait()
        self.figures.terms.append((code, time.monotonic() - started))

    async def kill_bot(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        await self.proc.wait()
        self.figures.kills += 1

    # ----------------------------------------------------------------- load

    async def ask(self) -> None:
        self._tags += 1
        tag = self._tags
        channel = self.rng.choice(self.channels)
        user = self.rng.choice(self.users)
        prompt = f"q{tag} tell me something"
        if self.rng.random() < 0.5:
            interaction = await self.discord.run_slash_command(
                self.guild, channel, user, "chat", {"prompt": prompt}
            )
            self.asks.append(Ask(tag, channel, user, interaction=interaction))
        else:
            mention = await self.discord.post_message(
                channel, user, f"<@{self.discord.bot_user_id}> {prompt}"
            )
            self.asks.append(Ask(tag, channel, user, mention=mention))
        self.figures.asks += 1

    def reply_of(self, ask: Ask) -> int | None:
        if ask.interaction is not None:
            return ask.interaction.message_id
        for message in self.discord.channel_messages(ask.channel):
            if message.reference_id == ask.mention and message.author_id == self.discord.bot_user_id:
                return message.id
        return None

    async def load(self, until: float) -> None:
        while time.monotonic() < until:
            if self.llm.active < self.concurrency:
                with contextlib.suppress(Exception):  # the gateway may be down: the question is lost
                    await self.ask()
            await asyncio.sleep(self.rng.uniform(0.02, 0.12))

    # ----------------------------------------------------------------- faults

    def live_replies(self) -> list[tuple[Ask, int]]:
        out = []
        for ask in self.asks[-80:]:
            reply = self.reply_of(ask)
            if reply is not None and self.discord.messages[reply].content.endswith(MARKER):
                out.append((ask, reply))
        return out

    async def stops(self, until: float) -> None:
        while time.monotonic() < until:
            await asyncio.sleep(self.rng.uniform(0.3, 1.5))
            live = self.live_replies()
            if not live:
                continue
            ask, reply = self.rng.choice(live)
            who = self.rng.choice([ask.user, ask.user, self.mod, self.stranger])
            with contextlib.suppress(Exception):
                await self.discord.add_reaction(ask.channel, reply, who, STOP)
                self.figures.injected[
                    "stop by "
                    + ("requester" if who == ask.user else "mod" if who == self.mod else "stranger")
                ] += 1

    async def faults(self, until: float) -> None:
        kinds = ["gateway", "gateway_fresh", "rest_5xx", "latency", "refuse", "db_lock", "sigterm", "sigkill"]
        while time.monotonic() < until - 5:
            await asyncio.sleep(self.rng.uniform(4, 10))
            kind = self.rng.choice(kinds)
            self.figures.injected[kind] += 1
            await getattr(self, f"_fault_{kind}")()

    async def _fault_gateway(self) -> None:
        await self.discord.gateway_down()
        await asyncio.sleep(self.rng.uniform(0.5, 3))
        self.discord.gateway_up()

    async def _fault_gateway_fresh(self) -> None:
        await self.discord.gateway_down()
        self.discord.gateway.sessions.clear()  # RESUME fails: the bot identifies afresh
        await asyncio.sleep(self.rng.uniform(0.5, 2))
        self.discord.gateway_up()

    async def _fault_rest_5xx(self) -> None:
        self.discord.fail_requests("PATCH", "/channels/", 503, count=self.rng.randint(3, 12))
        self.discord.fail_requests("POST", "/channels/", 502, count=self.rng.randint(1, 4))

    async def _fault_latency(self) -> None:
        self.discord.latency = self.rng.uniform(0.2, 0.8)
        await asyncio.sleep(self.rng.uniform(1, 4))
        self.discord.latency = 0.0

    async def _fault_refuse(self) -> None:
        live = [(a, r) for a, r in self.live_replies() if a.mention is not None]  # channel messages
        if not live:
            return
        _, reply = self.rng.choice(live)
        status, code = self.rng.choice([(403, 50013), (400, 50083)])
        self.refused_ids.add(reply)
        self.discord.fail_requests("PATCH", f"/messages/{reply}", status, count=1000, code=code)

    async def _fault_db_lock(self) -> None:
        conn = sqlite3.connect(self.db_path, isolation_level=None, timeout=10)
        try:
            conn.execute("BEGIN EXCLUSIVE")
            await asyncio.sleep(6)
            conn.execute("ROLLBACK")
        finally:
            conn.close()

    async def _fault_sigterm(self) -> None:
        await self.term_bot()
        await self.start_bot()

    async def _fault_sigkill(self) -> None:
        await self.kill_bot()
        await self.start_bot()

    async def watch_loop_lag(self, until: float) -> None:
        pattern = re.compile(rb"^streamcord_event_loop_lag_seconds ([0-9.e+-]+)$", re.M)
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        while time.monotonic() < until:
            await asyncio.sleep(1)
            with contextlib.suppress(Exception):
                body = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=2).read())
                if match := pattern.search(body):
                    self.figures.loop_lag.append(float(match.group(1)))

    # ----------------------------------------------------------------- run and check

    async def run(self) -> Figures:
        async with self.discord, self.llm:
            self.build()
            await self.start_bot()
            until = time.monotonic() + self.duration
            await asyncio.gather(
                self.load(until), self.stops(until), self.faults(until), self.watch_loop_lag(until)
            )
            await self.quiesce()
            self.check()
        return self.figures

    async def quiesce(self) -> None:
        """No more load: let the answers end, restart once (recovery of any orphan), then stop cleanly."""
        self.discord.latency = 0.0
        self.discord.gateway_up()
        with contextlib.suppress(TimeoutError):
            await self.llm.wait_for(lambda: self.llm.active == 0, timeout=60, what="model streams over")
        await self.term_bot()
        await self.start_bot()
        with contextlib.suppress(TimeoutError):
            # Recovery handles orphans one at a time, each paced: after several kills it takes a while.
            await self.discord.wait_for(
                lambda: not self._inflight_rows(), timeout=ORPHANS_TIMEOUT, what="orphans closed"
            )
        await asyncio.sleep(1)  # recovery's last edits and the stop buttons' removal land
        await self.term_bot()

    def _inflight_rows(self) -> int:
        with contextlib.closing(sqlite3.connect(self.db_path)) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM inflight").fetchone()[0])

    def check(self) -> None:
        v = self.figures.violations
        bot_id = self.discord.bot_user_id
        with contextlib.closing(sqlite3.connect(self.db_path)) as conn:
            rows = conn.execute("SELECT channel_id, user_id, status FROM usage").fetchall()
            inflight = conn.execute("SELECT COUNT(*) FROM inflight").fetchone()[0]
        self.usage_rows = len(rows)
        by_status = Counter(status for _, _, status in rows)
        self.by_status = by_status
        if by_status.get("streaming"):
            v.append(f"{by_status['streaming']} usage rows left in progress")
        if inflight:
            v.append(f"{inflight} in-flight rows remain")
        # Every request that reached the model has a usage row: per (channel, user), never more requests.
        asks = {a.tag: a for a in self.asks}
        reached: Counter[tuple[int, int]] = Counter()
        for request in self.llm.requests:
            match = _TAG.search(str(request.body["messages"][-1]["content"]))
            if match and int(match.group(1)) in asks:
                ask = asks[int(match.group(1))]
                reached[(ask.channel, ask.user)] += 1
        recorded = Counter((c, u) for c, u, _ in rows)
        for key, n in reached.items():
            if n > recorded[key]:
                v.append(f"{n - recorded[key]} model requests without a usage row in channel/user {key}")
        self.model_requests = sum(reached.values())
        # What the users see.
        requests_by_tag = {}
        for request in self.llm.requests:
            match = _TAG.search(str(request.body["messages"][-1]["content"]))
            if match:
                requests_by_tag[int(match.group(1))] = request
        self.cursor_left = self.double_status = self.incomplete = 0
        for message in self.discord.messages.values():
            if message.author_id != bot_id or message.ephemeral or message.deleted:
                continue
            content = message.content
            if (content.endswith(MARKER) or not content.strip()) and message.id not in self.refused_ids:
                self.cursor_left += 1
            head, line = split_status(content)
            if line is not None and split_status(head)[1] is not None:
                self.double_status += 1
        for ask in self.asks:
            reply = self.reply_of(ask)
            request = requests_by_tag.get(ask.tag)
            if reply is None or request is None or reply in self.refused_ids:
                continue
            text, line = split_status(self.discord.messages[reply].content)
            if line is None and not text.endswith(MARKER) and text != request.scenario.text.strip():
                if request.finished_at is not None:
                    self.incomplete += 1
        if self.cursor_left:
            v.append(f"{self.cursor_left} replies end in the cursor or a bare placeholder")
        if self.double_status:
            v.append(f"{self.double_status} replies with more than one status line")
        if self.incomplete:
            v.append(f"{self.incomplete} completed replies missing text")
        # Nothing injects a 429 from Discord; a restarted bot waits out what its predecessor may have spent.
        self.n429 = self.discord.count_429()
        if self.n429:
            v.append(f"{self.n429} responses 429")
        self.pings = 0
        for message in self.discord.messages.values():
            if message.author_id != bot_id:
                continue
            for version in message.versions:
                allowed = version.allowed_mentions or {}
                if allowed.get("parse") != [] or allowed.get("users") or allowed.get("roles"):
                    self.pings += 1
        if self.pings:
            v.append(f"{self.pings} message versions could ping")
        log = self.log_path.read_text(errors="replace")
        self.tracebacks = log.count("Traceback")
        self.never_retrieved = log.count("never retrieved")
        if self.tracebacks or self.never_retrieved:
            v.append(f"log: {self.tracebacks} tracebacks, {self.never_retrieved} 'never retrieved'")
        # The work folder is gone after a run without --keep: the log lines travel with the report.
        self.log_excerpts = _log_excerpts(log, ("Traceback", "never retrieved"))
        bad_terms = [t for t in self.figures.terms if t[0] != 0 or t[1] > TERM_BOUND]
        if bad_terms:
            v.append(f"SIGTERM exits not 0 within {TERM_BOUND:.0f} s: {bad_terms}")

    def report(self) -> str:
        f = self.figures
        lag = sorted(f.loop_lag)
        p99 = lag[min(len(lag) - 1, int(len(lag) * 0.99))] if lag else float("nan")
        median = statistics.median(lag) if lag else float("nan")
        terms = ", ".join(f"{code}/{secs:.1f}s" for code, secs in f.terms)
        lines = [
            f"chaos soak: seed {self.seed}, {self.duration:.0f} s of load, up to {self.concurrency} streams",
            f"questions asked: {f.asks}; model requests: {self.model_requests}; usage rows: {self.usage_rows}"
            f" {dict(self.by_status)}",
            f"injected: {dict(sorted(f.injected.items()))}; SIGKILLs: {f.kills}",
            f"SIGTERM exits (status/seconds): {terms}",
            f"replies ending in the cursor: {self.cursor_left}; with two status lines: {self.double_status};"
            f" completed but missing text: {self.incomplete};"
            f" refused by Discord on purpose: {len(self.refused_ids)}",
            f"429s: {self.n429};"
            f" versions that could ping: {self.pings}; log tracebacks: {self.tracebacks};"
            f" 'never retrieved': {self.never_retrieved}",
            f"event-loop lag p99: {p99 * 1000:.0f} ms (median {median * 1000:.0f} ms, {len(lag)} samples)",
            f"violations: {len(f.violations)}" + "".join(f"\n  - {x}" for x in f.violations),
            *(f"log excerpt:\n{excerpt}" for excerpt in self.log_excerpts),
        ]
        return "\n".join(lines)


def _log_excerpts(log: str, markers: tuple[str, ...], before: int = 3, after: int = 25) -> list[str]:
    """The lines around each marker (the logged message above a traceback, and the traceback)."""
    lines = log.splitlines()
    return [
        "\n".join(lines[max(0, i - before) : i + after])
        for i, line in enumerate(lines)
        if any(marker in line for marker in markers)
    ]


async def soak(seed: int, duration: float, concurrency: int, workdir: Path) -> Soak:
    s = Soak(seed, duration, concurrency, workdir)
    await s.run()
    return s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of load (default 600)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=50, help="model streams kept open (40-60)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (database, bot log)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="streamcord-chaos-"))
    s = asyncio.run(soak(args.seed, args.duration, args.concurrency, workdir))
    print(s.report())
    print(f"work folder: {workdir}" if args.keep else "", end="\n" if args.keep else "")
    if not args.keep:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if s.figures.violations else 0


if __name__ == "__main__":
    sys.exit(main())
