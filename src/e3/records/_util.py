"""Small conversions shared by the record modules."""

from __future__ import annotations

from datetime import UTC, datetime

from e3.codec.types import EastValue, none, some


def utc_now() -> datetime:
    """Current time, UTC, truncated to milliseconds (East DateTime precision)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def to_option(value: EastValue | None) -> EastValue:
    """Python ``None``/value to an East Option."""
    return none if value is None else some(value)


def from_option(value: EastValue) -> EastValue | None:
    """East Option to Python ``None``/value."""
    return value.value if value.type == "some" else None


def as_utc(value: datetime) -> datetime:
    """Decoded DateTimes are tz-aware; make sure of it for naive inputs."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
