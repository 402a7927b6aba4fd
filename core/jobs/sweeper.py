"""Re-publishing stranded jobs: a job accepted but whose task the broker lost (a Redis failover or flush after
the outbox row was deleted), or a RUNNING job past its lease whose task gave up, would otherwise never run.

Invariant: every job still to run — QUEUED, or RUNNING with no live lease — that has no outbox message waiting
and has been idle longer than `jobs_stranded_after` gets a new outbox message in the same statement that marks it
swept (so it is re-published at most once per threshold: one call measures idleness against one cutoff, taken
when it starts, so a batch never re-sweeps what an earlier batch of the same call swept), published after
commit; the relay sends it if the broker is still away. A job re-published while its first task still waits in
the broker costs a no-op task: the claim runs a job once (core.execution).
"""
from __future__ import annotations

from sqlalchemy import (
    DateTime,
    Float,
    Integer,
    String,
    bindparam,
    cast,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)

from core.jobs.creation import RUN_JOB
from core.jobs.models import Job
from core.jobs.statuses import QUEUED, RUNNING
from core.platform import metrics, outbox
from core.platform.models import OutboxMessage
from core.platform.runtime import settings
from tenancy.db import tenant_autocommit

_JOBS, _BOX = Job.__table__, OutboxMessage.__table__
REASONS = {QUEUED: "queued", RUNNING: "lease_expired"}


def _sweep_statement():
    now = func.now()
    idle_since = func.coalesce(_JOBS.c.not_before, _JOBS.c.updated_at)
    cutoff = bindparam("cutoff", type_=DateTime(timezone=True))
    waiting = exists().where(_BOX.c.task == RUN_JOB, _BOX.c.args[0].astext == cast(_JOBS.c.id, String))
    stranded = (select(_JOBS.c.id)
                .where(_JOBS.c.status.in_((QUEUED, RUNNING)), idle_since < cutoff, ~waiting,
                       or_(_JOBS.c.lease_expires_at.is_(None), _JOBS.c.lease_expires_at <= now))
                .order_by(_JOBS.c.updated_at).limit(bindparam("batch", type_=Integer))
                .with_for_update(skip_locked=True))
    swept = (update(_JOBS).where(_JOBS.c.id.in_(stranded.scalar_subquery()))
             .values(updated_at=now, not_before=None).returning(_JOBS.c.id, _JOBS.c.status).cte("swept"))
    messages = (insert(_BOX).from_select(["task", "args", "countdown"],
                                         select(literal(RUN_JOB), func.jsonb_build_array(cast(swept.c.id, String)),
                                                literal(0.0)).select_from(swept))
                .returning(_BOX.c.id, _BOX.c.args).cte("messages"))
    return (select(swept.c.id, swept.c.status, messages.c.id.label("outbox_id"))
            .select_from(swept.join(messages, messages.c.args[0].astext == cast(swept.c.id, String))))


_SWEEP = _sweep_statement()
_CUTOFF = select(func.now() - func.make_interval(0, 0, 0, 0, 0, 0, bindparam("stranded_after", type_=Float)))


def sweep_stranded_jobs(*, batch: int = 500, max_batches: int = 20) -> dict[str, int]:
    """Re-publish the current tenant's stranded jobs, `batch` per statement, at most `max_batches` per call (the
    rest wait for the next beat); answers how many per reason."""
    counts = dict.fromkeys(REASONS.values(), 0)
    with tenant_autocommit() as connection:  # one cutoff for the whole call: what it swept is not idle again
        cutoff = connection.scalar(_CUTOFF, {"stranded_after": float(settings().jobs_stranded_after)})
    for _ in range(max_batches):
        with tenant_autocommit() as connection:
            rows = connection.execute(_SWEEP, {"cutoff": cutoff, "batch": batch}).all()
        outbox.publish([OutboxMessage(id=row.outbox_id, task=RUN_JOB, args=[str(row.id)], countdown=0.0)
                        for row in rows])
        for row in rows:
            counts[REASONS[row.status]] += 1
            metrics.jobs_swept.labels(REASONS[row.status]).inc()
        if len(rows) < batch:
            break
    return counts
