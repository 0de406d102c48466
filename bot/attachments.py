"""Files a user attaches to a question: which ones the model gets, and how they enter the user turn (pure).

Text-like files go into the turn's text with their names; images become `image_url` content parts (as
data URLs: local model servers cannot fetch Discord's CDN); anything else, or past a limit, is skipped with
a reason the answer shows. Nothing is read beyond a limit: `size` is checked before fetching and the body
is cut at the limit while it streams in (see bot/attachment_fetch.py)."""

from __future__ import annotations

import base64
import dataclasses
from dataclasses import dataclass
from enum import Enum
from pathlib import PurePosixPath
from typing import Any

from bot.llm import ChatRequest, ContentPart, Message, message_text

TEXT_MAX_BYTES = 100_000
IMAGE_MAX_BYTES = 5_000_000
MAX_TEXT_FILES = 5
MAX_IMAGES = 5

_IMAGE_EXTENSIONS = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
}
IMAGE_TYPES = frozenset(_IMAGE_EXTENSIONS.values())
_TEXT_TYPES = frozenset(
    {
        "application/json",
        "application/x-ndjson",
        "application/yaml",
        "application/x-yaml",
        "application/toml",
        "application/xml",
        "application/javascript",
        "application/x-sh",
        "application/sql",
        "application/x-python",
    }
)
_TEXT_EXTENSIONS = frozenset(
    ".txt .md .rst .log .csv .tsv .json .jsonl .yaml .yml .toml .ini .cfg .conf .env .xml .html .css .sql"
    " .py .pyi .js .mjs .ts .tsx .jsx .java .kt .go .rs .c .h .cc .cpp .hpp .cs .rb .php .swift .lua .sh"
    " .bash .zsh .ps1 .r .scala .dart .ex .exs .hs .ml .vue .svelte .diff .patch .gradle .tf"
    " .dockerfile .makefile".split()
)


class Kind(Enum):
    TEXT = "text"
    IMAGE = "image"
    OTHER = "other"


@dataclass(frozen=True)
class AttachmentInfo:
    """What Discord tells about an attachment before anything is downloaded."""

    id: int
    filename: str
    size: int
    content_type: str | None
    url: str


@dataclass(frozen=True)
class Skipped:
    filename: str
    reason: str


@dataclass(frozen=True)
class Selection:
    """The attachments to fetch, in order, and the ones skipped without fetching."""

    text: list[AttachmentInfo]
    images: list[AttachmentInfo]
    skipped: list[Skipped]


@dataclass(frozen=True)
class Prepared:
    """Fetched attachments, ready for the user turn."""

    texts: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (filename, text)
    images: list[str] = dataclasses.field(default_factory=list)  # data URLs
    skipped: list[Skipped] = dataclasses.field(default_factory=list)


def kind_of(info: AttachmentInfo) -> Kind:
    media = (info.content_type or "").split(";")[0].strip().lower()
    name = PurePosixPath(info.filename.lower())
    suffix = name.suffix or (f".{name.name}" if name.name in ("dockerfile", "makefile") else "")
    if media in IMAGE_TYPES or (not media and suffix in _IMAGE_EXTENSIONS):
        return Kind.IMAGE
    if media.startswith("text/") or media in _TEXT_TYPES or suffix in _TEXT_EXTENSIONS:
        return Kind.TEXT
    return Kind.OTHER


def select(attachments: list[AttachmentInfo], *, vision: bool) -> Selection:
    text: list[AttachmentInfo] = []
    images: list[AttachmentInfo] = []
    skipped: list[Skipped] = []
    for info in attachments:
        kind = kind_of(info)
        if kind is Kind.TEXT:
            reason = _over(info, TEXT_MAX_BYTES, len(text), MAX_TEXT_FILES, "text files")
            taken = text
        elif kind is Kind.IMAGE:
            reason = _over(info, IMAGE_MAX_BYTES, len(images), MAX_IMAGES, "images")
            reason = reason if vision else "images are off here"
            taken = images
        else:
            reason = "not a text file or an image"
        if reason:
            skipped.append(Skipped(info.filename, reason))
        else:
            taken.append(info)
    return Selection(text, images, skipped)


def _over(info: AttachmentInfo, max_bytes: int, taken: int, max_count: int, what: str) -> str:
    if info.size > max_bytes:
        return over_limit(max_bytes)
    if taken >= max_count:
        return f"more than {max_count} {what}"
    return ""


def over_limit(max_bytes: int) -> str:
    """Why a file past ``max_bytes`` was skipped."""
    return f"over {max_bytes // 1_000_000} MB" if max_bytes >= 1_000_000 else f"over {max_bytes // 1000} kB"


def decode_text(data: bytes) -> str | None:
    """The file's text, or None for binary content behind a text-like name."""
    if b"\x00" in data:
        return None
    return data.decode("utf-8", errors="replace")


def image_url(data: bytes, info: AttachmentInfo) -> str:
    media = (info.content_type or "").split(";")[0].strip().lower()
    if media not in IMAGE_TYPES:
        media = _IMAGE_EXTENSIONS.get(PurePosixPath(info.filename.lower()).suffix, "image/png")
    return f"data:{media};base64,{base64.b64encode(data).decode()}"


def file_block(name: str, body: str) -> str:
    """A text file as it follows the prompt in the user turn."""
    return f"\n\nAttached file `{name}`:\n```\n{body}\n```"


def user_content(prompt: str, prepared: Prepared) -> str | list[ContentPart]:
    """The user turn: the prompt, each text file under its name, then the images as content parts."""
    text = prompt + "".join(file_block(name, body) for name, body in prepared.texts)
    if not prepared.images:
        return text
    parts: list[ContentPart] = [{"type": "text", "text": text}]
    parts += [{"type": "image_url", "image_url": {"url": url}} for url in prepared.images]
    return parts


def has_images(request: ChatRequest) -> bool:
    return any(_image_parts(m) for m in request.messages)


def without_images(request: ChatRequest) -> ChatRequest:
    """The same request with every image part removed: for a model that refuses images."""
    return dataclasses.replace(request, messages=[_text_only(m) for m in request.messages])


def _image_parts(message: Message) -> list[Any]:
    content = message["content"]
    return [] if isinstance(content, str) else [p for p in content if p.get("type") == "image_url"]


def _text_only(message: Message) -> Message:
    if isinstance(message["content"], str):
        return message
    return {"role": message["role"], "content": message_text(message)}
