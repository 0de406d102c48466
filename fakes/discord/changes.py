"""What every part that changes the fake's world needs (world.py, messages.py, commands.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fakes.discord.gateway import Gateway
from fakes.discord.payloads import Payloads
from fakes.discord.state import State


@dataclass
class Changes:
    state: State  # the tables to change
    payloads: Payloads  # to describe the change
    gateway: Gateway  # to tell connected bots
    changed: Callable[[], None]  # to wake the tests waiting on a change
