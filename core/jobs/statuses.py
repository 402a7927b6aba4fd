"""Job statuses and the one transition table every status change goes through."""
from __future__ import annotations

from datetime import UTC, datetime

from core.jobs.models import Job
from core.platform.errors import Conflict

QUEUED, RUNNING, COMPLETED, FAILED, CANCELLED = "QUEUED", "RUNNING", "COMPLETED", "FAILED", "CANCELLED"
STATUSES = (QUEUED, RUNNING, COMPLETED, FAILED, CANCELLED)
TRANSITIONS = {
    QUEUED: {RUNNING, CANCELLED},
    RUNNING: {COMPLETED, FAILED, CANCELLED, QUEUED},  # QUEUED: waiting for a retry after a retryable error
    FAILED: {QUEUED},  # manual retry
    CANCELLED: {QUEUED},  # manual retry
    COMPLETED: set(),
}


class IllegalTransition(Conflict):
    code = "illegal-transition"


def transition(job: Job, to: str) -> None:
    if to not in TRANSITIONS[job.status]:
        raise IllegalTransition(f"a {job.status} job cannot become {to}")
    job.status = to
    now = datetime.now(UTC)
    if to == RUNNING:
        job.started_at = now
    elif to in (COMPLETED, FAILED, CANCELLED):
        job.finished_at = now
