"""The one stored time format: fixed-width ISO-8601 UTC text ("2025-01-31T12:00:00.000000Z").

Fixed width means stored times sort and compare correctly as plain text, whatever the backend.
"""

from __future__ import annotations

from datetime import UTC, datetime

_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def utcnow() -> datetime:
    return datetime.now(UTC)


def to_db_time(dt: datetime) -> str:
    """Aware datetime -> stored text; naive datetimes are taken to be UTC."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).strftime(_TIME_FORMAT)


def from_db_time(text: str) -> datetime:
    return datetime.strptime(text, _TIME_FORMAT).replace(tzinfo=UTC)
