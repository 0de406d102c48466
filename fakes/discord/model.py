"""Discord's numbers (permission bits, channel types, intents, flags) and the records the fake keeps."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DISCORD_EPOCH_MS = 1420070400000
MAX_CONTENT = 2000

# Permission bits (https://discord.com/developers/docs/topics/permissions).
ADD_REACTIONS = 1 << 6
ADMINISTRATOR = 1 << 3
MANAGE_GUILD = 1 << 5
VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
MANAGE_MESSAGES = 1 << 13
EMBED_LINKS = 1 << 14
ATTACH_FILES = 1 << 15
READ_MESSAGE_HISTORY = 1 << 16
USE_EXTERNAL_EMOJIS = 1 << 18
USE_APPLICATION_COMMANDS = 1 << 31
SEND_MESSAGES_IN_THREADS = 1 << 38
ALL_PERMISSIONS = (1 << 51) - 1
EVERYONE_PERMISSIONS = (
    VIEW_CHANNEL
    | SEND_MESSAGES
    | READ_MESSAGE_HISTORY
    | ADD_REACTIONS
    | EMBED_LINKS
    | ATTACH_FILES
    | USE_EXTERNAL_EMOJIS
    | USE_APPLICATION_COMMANDS
    | SEND_MESSAGES_IN_THREADS
)
BOT_PERMISSIONS = EVERYONE_PERMISSIONS | MANAGE_MESSAGES

# Permissions in a DM channel (there are no roles or overwrites there).
DM_PERMISSIONS = EVERYONE_PERMISSIONS & ~(USE_APPLICATION_COMMANDS | SEND_MESSAGES_IN_THREADS)

# Channel types (https://discord.com/developers/docs/resources/channel#channel-object-channel-types).
CHANNEL_TEXT = 0
CHANNEL_DM = 1
CHANNEL_PUBLIC_THREAD = 11

GUILD_MEMBERS_INTENT = 1 << 1
DIRECT_MESSAGES_INTENT = 1 << 12
DIRECT_MESSAGE_REACTIONS_INTENT = 1 << 13
MESSAGE_CONTENT_INTENT = 1 << 15
FLAG_EPHEMERAL = 64
FLAG_LOADING = 128

# Application command option types (strings are the default).
OPT_INTEGER, OPT_BOOLEAN, OPT_USER, OPT_CHANNEL, OPT_ROLE, OPT_MENTIONABLE, OPT_NUMBER = range(4, 11)
OPT_ATTACHMENT = 11
INTERACTION_COMPONENT = 3  # a click on a button (the other interaction types live in commands.py)


@dataclass(frozen=True)
class FakeAttachment:
    """A file: uploaded by the bot with a message, or by a user with a message or as a command option;
    served by the fake's CDN route."""

    id: int
    filename: str
    data: bytes
    content_type: str = "application/octet-stream"
    size: int | None = None  # the size Discord reports; None: the real one (a wrong one tests read caps)


@dataclass
class MessageVersion:
    at: float
    content: str
    embeds: list[Any]
    allowed_mentions: dict[str, Any] | None
    flags: int
    attachments: list[FakeAttachment] = field(default_factory=list)
    components: list[Any] = field(default_factory=list)  # action rows, as the bot sent them


@dataclass
class FakeMessage:
    id: int
    channel_id: int
    guild_id: int | None
    author_id: int
    versions: list[MessageVersion] = field(default_factory=list)
    deleted_at: float | None = None
    reactions: dict[str, set[int]] = field(default_factory=dict)
    reference_id: int | None = None
    interaction_id: int | None = None
    ephemeral: bool = False
    webhook_id: int | None = None
    type: int = 0
    mentions: list[int] = field(default_factory=list)
    mention_roles: list[int] = field(default_factory=list)
    mention_everyone: bool = False

    @property
    def content(self) -> str:
        return self.versions[-1].content

    @property
    def embeds(self) -> list[Any]:
        return self.versions[-1].embeds

    @property
    def flags(self) -> int:
        return self.versions[-1].flags

    @property
    def attachments(self) -> list[FakeAttachment]:
        return self.versions[-1].attachments

    @property
    def components(self) -> list[Any]:
        return self.versions[-1].components

    @property
    def created_at(self) -> float:
        return self.versions[0].at

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None


@dataclass
class RequestRecord:
    at: float
    method: str
    path: str
    bucket_key: str
    status: int = 0
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class FakeInteraction:
    id: int
    token: str
    type: int
    name: str
    user_id: int
    channel_id: int
    guild_id: int | None
    created_at: float
    response_type: int | None = None
    response_data: dict[str, Any] | None = None
    responded_at: float | None = None
    message_id: int | None = None
    choices: list[dict[str, Any]] | None = None
    followup_ids: list[int] = field(default_factory=list)


@dataclass
class User:
    id: int
    name: str
    bot: bool = False


@dataclass
class Guild:
    id: int
    name: str
    roles: dict[int, dict[str, Any]] = field(default_factory=dict)
    channels: list[int] = field(default_factory=list)
    threads: list[int] = field(default_factory=list)  # active public threads, sent in GUILD_CREATE
    members: dict[int, list[int]] = field(default_factory=dict)  # user id -> role ids (without @everyone)
    joined_at: str = ""


@dataclass
class Channel:
    id: int
    guild_id: int | None  # None for a DM channel
    name: str
    position: int
    type: int = CHANNEL_TEXT
    parent_id: int | None = None  # a thread's text channel
    owner_id: int | None = None  # who started a thread
    recipient_id: int | None = None  # the user at the other end of a DM channel
    # Text channels: target id -> (0 role / 1 member, allow, deny). Threads have none: their parent's apply.
    overwrites: dict[int, tuple[int, int, int]] = field(default_factory=dict)
    message_count: int = 0  # threads: live messages (Discord does not count the starter message)
    archived: bool = False  # threads: posts and edits are refused (400 50083)
    total_message_sent: int = 0  # threads: every message ever sent, deletions included

    @property
    def is_thread(self) -> bool:
        return self.type == CHANNEL_PUBLIC_THREAD
