"""Answers admitted and not yet over, per member: how many run, and the tokens they may still spend.

The usage table counts an answer's tokens only once it ends; until then its reservation stands in for them,
so parallel requests cannot all pass a daily quota, nor one member take every slot.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field

Member = tuple[int | None, int]  # (guild_id, user_id)


@dataclass(eq=False)
class Ticket:
    """One admitted answer's hold on its member's share; release() once it is over (idempotent)."""

    member: Member
    tokens: int
    _book: Reservations = field(repr=False)
    released: bool = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self._book._release(self)

    @contextlib.contextmanager
    def until_started(self) -> Iterator[None]:
        """Around the work between admission and StreamManager.start (which takes the ticket over): if it
        fails, the answer never starts and the ticket is released."""
        try:
            yield
        except BaseException:
            self.release()
            raise


class Reservations:
    def __init__(self) -> None:
        self._held: defaultdict[Member, set[Ticket]] = defaultdict(set)

    def running(self, member: Member) -> int:
        return len(self._held.get(member, ()))

    def reserved_tokens(self, member: Member) -> int:
        return sum(ticket.tokens for ticket in self._held.get(member, ()))

    def take(self, member: Member, tokens: int) -> Ticket:
        ticket = Ticket(member, tokens, self)
        self._held[member].add(ticket)
        return ticket

    def _release(self, ticket: Ticket) -> None:
        held = self._held.get(ticket.member)
        if held is not None:
            held.discard(ticket)
            if not held:
                del self._held[ticket.member]
