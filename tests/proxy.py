"""The REST proxy (proxy/launch.mjs, @discordjs/proxy) started by the tests in front of the loopback Discord.

Node.js and `npm ci --prefix proxy` come from the machine (.ci/run installs both). Without them the tests
that need the proxy are skipped locally and fail under CI=true.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

PROXY_DIR = Path(__file__).resolve().parent.parent / "proxy"
_LISTENING = re.compile(rb"listening on port (\d+)")


def require_proxy() -> str:
    """The node executable, or skip (fail under CI) when the proxy cannot run here."""
    node = shutil.which("node")
    missing = (
        "node is not installed"
        if node is None
        else "proxy/node_modules is missing: run `npm ci --prefix proxy`"
        if not (PROXY_DIR / "node_modules" / "@discordjs" / "proxy").is_dir()
        else None
    )
    if missing is None and node is not None:
        return node
    if os.environ.get("CI") == "true":
        pytest.fail(f"the REST proxy cannot run: {missing}")
    pytest.skip(f"the REST proxy cannot run: {missing}")


@contextlib.asynccontextmanager
async def rest_proxy(upstream_api: str, log_path: Path, *, global_rps: int = 48) -> AsyncIterator[str]:
    """Run the proxy in front of `upstream_api` (e.g. http://127.0.0.1:N/api); yields its /api/v10 base."""
    node = require_proxy()
    env = {**os.environ, "PORT": "0", "DISCORD_API": upstream_api, "GLOBAL_RPS": str(global_rps)}
    process = await asyncio.create_subprocess_exec(
        node,
        str(PROXY_DIR / "launch.mjs"),
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    try:
        first = await asyncio.wait_for(process.stdout.readline(), timeout=20)
        match = _LISTENING.search(first)
        if match is None:
            rest = await asyncio.wait_for(process.stdout.read(), timeout=5)
            raise AssertionError(f"the REST proxy did not start: {(first + rest).decode(errors='replace')}")
        copier = asyncio.create_task(_copy(process.stdout, log_path))
        yield f"http://127.0.0.1:{int(match.group(1))}/api/v10"
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()
    await copier


async def _copy(stream: asyncio.StreamReader, log_path: Path) -> None:
    """Keep the proxy's output (errors only; it logs nothing per request) next to the test's other logs."""
    with log_path.open("ab") as log:
        while line := await stream.readline():
            log.write(line)
