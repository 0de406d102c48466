"""How the stream engine sees Discord: a reply made of numbered pages, each one message."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from bot.streaming.routes import Route


@dataclass(frozen=True)
class FileUpload:
    """A file attached to a page, e.g. a reasoning model's thinking."""

    filename: str
    data: bytes


class MessageGone(Exception):
    """The reply (or its channel) no longer exists: stop generating."""


class DeliveryBlocked(Exception):
    """Discord refuses the reply for good (permission revoked, thread archived): stop generating."""


class DeliveryFailed(Exception):
    """Discord refused a request in a way that retrying would not fix."""


class DeliveryRetry(Exception):
    """A passing failure (a Discord 5xx, the network): the same request may succeed shortly."""


class TargetExpired(Exception):
    """The interaction token expired: continue through plain channel messages."""


# Show the in-progress marker if the model is silent this long: Discord wants interactions answered in 3 s.
PLACEHOLDER_AFTER = 2.0


class ReplyTarget(Protocol):
    channel_id: int
    message_ids: list[int]
    answer_deadline: bool  # Discord wants something shown by placeholder_delay() (an interaction)

    def placeholder_delay(self) -> float:
        """Seconds from now until the placeholder must be shown."""
        ...

    def route(self, page: int) -> Route:
        """The route the next put() of this page will take."""
        ...

    async def put(self, page: int, content: str, file: FileUpload | None = None) -> None:
        """Create the page (page == len(message_ids)) or edit it, with ``file`` attached if given."""
        ...

    def reaction_route(self, shown: bool) -> Route:
        """The route set_stop_button(shown) takes."""
        ...

    def note_route(self) -> Route:
        """The route note() takes."""
        ...

    async def note(self, text: str) -> None:
        """Post a short message beside the reply, where the bot may still write (the reply being blocked)."""
        ...

    async def set_stop_button(self, shown: bool) -> None:
        """Add or remove the bot's own 🛑 reaction on the first page."""
        ...

    def fall_back(self) -> None:
        """Switch to plain channel messages after TargetExpired."""
        ...
