"""Discord's error answers: the JSON error body, the "Unknown …" 404s and message validation (400s)."""

from __future__ import annotations

from typing import Any

from fakes.discord.model import MAX_CONTENT


class ApiError(Exception):
    """Raised anywhere below a REST handler; the server answers with `status` and Discord's error body."""

    def __init__(self, status: int, code: int, message: str, errors: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.errors = status, code, message, errors

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.errors is not None:
            body["errors"] = self.errors
        return body


def unknown_message() -> ApiError:
    return ApiError(404, 10008, "Unknown Message")


def unknown_channel() -> ApiError:
    return ApiError(404, 10003, "Unknown Channel")


def unknown_interaction() -> ApiError:
    return ApiError(404, 10062, "Unknown interaction")


def invalid_form_body(field: str, code: str, message: str) -> ApiError:
    """Discord's 50035 with one field error, e.g. ("content", "BASE_TYPE_MAX_LENGTH", "Must be …")."""
    return ApiError(
        400, 50035, "Invalid Form Body", {field: {"_errors": [{"code": code, "message": message}]}}
    )


def has_other_content(body: dict[str, Any]) -> bool:
    """Attachments, stickers, components or polls make a message non-empty even without content."""
    return any(body.get(k) for k in ("attachments", "sticker_ids", "components", "poll"))


def validate_message(content: str, embeds: list[Any], *, empty_ok: bool = False, prefix: str = "") -> None:
    """Content length, embed count and emptiness; `prefix` nests the error (interaction callbacks: "data")."""
    if len(content) > MAX_CONTENT:
        error = invalid_form_body(
            "content", "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_CONTENT} or fewer in length."
        )
        if prefix and error.errors is not None:
            error.errors = {prefix: error.errors}
        raise error
    if len(embeds) > 10:
        raise invalid_form_body("embeds", "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
    if not empty_ok and not content and not embeds:
        raise ApiError(400, 50006, "Cannot send an empty message")
