"""When a scheduled (polling) workflow runs next: spread with jitter, so tenants with the same schedule do not
all poll in the same second."""
from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta


def next_run(schedule_seconds: int, *, first: bool = False) -> datetime:
    """Spread runs: the first lands anywhere in one period, later ones drift by up to ±10 %, so a thousand
    tenants with the same schedule do not poll in the same second."""
    now = datetime.now(UTC)
    if first:
        return now + timedelta(seconds=random.uniform(0, schedule_seconds))
    return now + timedelta(seconds=schedule_seconds * random.uniform(0.9, 1.1))
