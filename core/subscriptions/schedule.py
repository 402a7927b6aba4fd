"""When a failed message is tried again: the retry schedule (a setting, so tests shorten it) with ±20 % jitter,
never sooner than a 429/503's Retry-After, never later than a day; None once the schedule is spent."""
from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

MAX_WAIT = 86400.0
JITTER = 0.2


def next_delay(schedule: tuple[float, ...], attempts: int, retry_after: float | None = None) -> float | None:
    """Seconds until the next attempt after `attempts` attempts (1 after the first), or None: give up."""
    if attempts > len(schedule):
        return None
    delay = schedule[attempts - 1] * random.uniform(1 - JITTER, 1 + JITTER)
    return min(MAX_WAIT, max(delay, retry_after or 0.0))


def retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """A Retry-After header (seconds, or an HTTP date) in seconds; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
