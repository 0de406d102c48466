"""What the libraries cost in memory before the bot does anything: the imports, and one open model stream.

    python bench/footprint.py [--streams 500]

Each figure is the resident memory (RSS) a fresh interpreter gains:
* imports: the interpreter alone, then discord.py with aiohttp, then the openai client library on top, then
  the bot's own modules and cogs;
* one open model stream: ``--streams`` chat completions held open at once against a loopback SSE server in
  the same process, sent as bot/llm.py sends them (openai's client over its aiohttp transport), and the same
  requests sent with aiohttp alone. The server's share is the same in both, so the difference is what the
  openai client's layers (request options, httpx request and response) hold per answer.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
IMPORT_STEPS = (
    ("interpreter", ""),
    ("+ discord.py, aiohttp", "import aiohttp, discord, discord.ext.commands"),
    ("+ openai", "import openai"),
    ("+ the bot's modules and cogs", "import bot.__main__, cogs.chat, cogs.stop, cogs.config, cogs.usage"),
)
RSS_PROBE = "print(open('/proc/self/status').read().split('VmRSS:')[1].split()[0])"  # KB; imports nothing
PROMPT = [{"role": "user", "content": "Tell me about the weather. " * 8}]


def rss_kb() -> int:
    with open("/proc/self/status") as status:
        match = re.search(r"VmRSS:\s+(\d+)", status.read())
    assert match is not None
    return int(match.group(1))


def import_footprint() -> list[tuple[str, float]]:
    """RSS after each cumulative import step, each in a fresh interpreter."""
    rows = []
    code = ""
    for label, statement in IMPORT_STEPS:
        code += statement + "\n"
        probe = [sys.executable, "-c", code + RSS_PROBE]
        out = subprocess.run(probe, cwd=ROOT, capture_output=True, text=True, check=True)
        rows.append((label, int(out.stdout.strip()) / 1024))
    return rows


@contextlib.asynccontextmanager
async def held_open_sse() -> AsyncIterator[str]:
    """A loopback chat-completions endpoint that sends one chunk and then holds every stream open."""
    from aiohttp import web

    release = asyncio.Event()

    async def completions(request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b'data: {"choices":[{"index":0,"delta":{"content":"Hi"}}]}\n\n')
        await release.wait()
        return response

    app = web.Application()
    app.router.add_post("/v1/chat/completions", completions)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        release.set()
        await runner.cleanup()


async def openai_streams(base_url: str, streams: int) -> float:
    import openai

    client = openai.AsyncOpenAI(
        base_url=base_url, api_key="bench", max_retries=0, http_client=openai.DefaultAioHttpClient()
    )
    chat = client.chat.completions.with_streaming_response

    async def one(opened: asyncio.Event, hold: asyncio.Event) -> None:
        async with chat.create(
            model="bench",
            messages=[],
            extra_body={"messages": PROMPT},
            temperature=1.0,
            max_tokens=None,
            stream=True,
            stream_options={"include_usage": True},
        ) as response:
            async for _ in response.http_response.aiter_bytes():
                opened.set()
                await hold.wait()
                return

    try:
        return await _held(one, streams)
    finally:
        await client.close()


async def aiohttp_streams(base_url: str, streams: int) -> float:
    import aiohttp

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def one(opened: asyncio.Event, hold: asyncio.Event) -> None:
            body = {"model": "bench", "messages": PROMPT, "stream": True, "temperature": 1.0}
            headers = {"Authorization": "Bearer bench"}
            async with session.post(f"{base_url}/chat/completions", json=body, headers=headers) as response:
                async for _ in response.content.iter_any():
                    opened.set()
                    await hold.wait()
                    return

        return await _held(one, streams)


Stream = Callable[[asyncio.Event, asyncio.Event], Coroutine[Any, Any, None]]  # (opened, hold)


async def _held(one: Stream, streams: int) -> float:
    """KB of RSS per stream with ``streams`` open at once (one opened first: set-up is not counted)."""
    hold = asyncio.Event()
    first = asyncio.Event()
    warm = asyncio.create_task(one(first, hold))
    await first.wait()
    before = rss_kb()
    opened = [asyncio.Event() for _ in range(streams)]
    tasks = [asyncio.create_task(one(event, hold)) for event in opened]
    await asyncio.gather(*(event.wait() for event in opened))
    per_stream = (rss_kb() - before) / streams
    hold.set()
    await asyncio.gather(warm, *tasks)
    return per_stream


async def stream_footprint(kind: str, streams: int) -> float:
    async with held_open_sse() as base_url:
        if kind == "openai":
            return await openai_streams(base_url, streams)
        return await aiohttp_streams(base_url, streams)


def main() -> None:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=raw)
    parser.add_argument("--streams", type=int, default=500)
    parser.add_argument("--only", choices=("openai", "aiohttp"), help=argparse.SUPPRESS)  # one measurement
    args = parser.parse_args()
    if args.only:
        print(f"{asyncio.run(stream_footprint(args.only, args.streams)):.1f}")
        return
    print("imports (RSS of a fresh interpreter)")
    previous = 0.0
    for label, mb in import_footprint():
        print(f"  {label:<32} {mb:6.1f} MB  (+{mb - previous:.1f})")
        previous = mb
    print(f"one open model stream ({args.streams} at once, loopback server in the same process)")
    for kind, label in (("openai", "openai client, as bot/llm.py"), ("aiohttp", "aiohttp alone")):
        command = [sys.executable, __file__, "--only", kind, "--streams", str(args.streams)]
        out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
        print(f"  {label:<32} {float(out.stdout.strip()):6.1f} KB per stream")


if __name__ == "__main__":
    main()
