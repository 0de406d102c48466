"""Which attachments the model gets and how they enter the user turn (pure)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from bot.attachment_fetch import read_capped
from bot.attachments import (
    MAX_IMAGES,
    MAX_TEXT_FILES,
    TEXT_MAX_BYTES,
    AttachmentInfo,
    Kind,
    Prepared,
    Skipped,
    has_images,
    kind_of,
    select,
    user_content,
    without_images,
)
from bot.llm import ChatRequest


def info(filename: str, size: int = 10, content_type: str | None = None, n: int = 1) -> AttachmentInfo:
    return AttachmentInfo(n, filename, size, content_type, f"http://cdn/{n}/{filename}")


def test_kinds_by_content_type_then_extension() -> None:
    assert kind_of(info("notes", content_type="text/plain; charset=utf-8")) is Kind.TEXT
    assert kind_of(info("data", content_type="application/json")) is Kind.TEXT
    assert kind_of(info("main.py", content_type="application/octet-stream")) is Kind.TEXT
    assert kind_of(info("Dockerfile")) is Kind.TEXT
    assert kind_of(info("shot.PNG")) is Kind.IMAGE
    assert kind_of(info("x", content_type="image/webp")) is Kind.IMAGE
    assert kind_of(info("pic.tiff", content_type="image/tiff")) is Kind.OTHER
    assert kind_of(info("logs.zip", content_type="application/zip")) is Kind.OTHER


def test_limits_are_checked_before_anything_is_fetched() -> None:
    files = [info(f"f{i}.txt", n=i) for i in range(MAX_TEXT_FILES + 1)]
    files += [info("big.log", TEXT_MAX_BYTES + 1), info("a.zip", content_type="application/zip")]
    files += [info(f"i{i}.png", n=100 + i) for i in range(MAX_IMAGES + 1)]
    chosen = select(files, vision=True)
    assert [f.filename for f in chosen.text] == [f"f{i}.txt" for i in range(MAX_TEXT_FILES)]
    assert len(chosen.images) == MAX_IMAGES
    assert chosen.skipped == [
        Skipped(f"f{MAX_TEXT_FILES}.txt", f"more than {MAX_TEXT_FILES} text files"),
        Skipped("big.log", "over 100 kB"),
        Skipped("a.zip", "not a text file or an image"),
        Skipped(f"i{MAX_IMAGES}.png", f"more than {MAX_IMAGES} images"),
    ]


def test_images_skipped_when_vision_is_off() -> None:
    chosen = select([info("a.png")], vision=False)
    assert chosen.images == [] and chosen.skipped == [Skipped("a.png", "images are off here")]


def test_user_turn_with_files_and_images_and_the_same_without_images() -> None:
    prepared = Prepared(texts=[("log.txt", "line 1")], images=["data:image/png;base64,AA=="])
    content = user_content("What failed?", prepared)
    assert content == [
        {"type": "text", "text": "What failed?\n\nAttached file `log.txt`:\n```\nline 1\n```"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}},
    ]
    request = ChatRequest("m", [{"role": "user", "content": content}], 0.5, None)
    assert has_images(request)
    plain = without_images(request)
    assert not has_images(plain)
    assert plain.messages == [{"role": "user", "content": content[0]["text"]}]
    assert user_content("hi", Prepared()) == "hi"


async def _chunks(*items: bytes) -> AsyncIterator[bytes]:
    for item in items:
        yield item
    raise AssertionError("read past the limit")


async def test_reading_stops_at_the_limit() -> None:
    assert await read_capped(_chunks(b"12345", b"678"), 7) is None
