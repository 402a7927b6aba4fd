"""Per-plan retention: what a tenant has finished with is deleted once older than its plan's `retention_days`.

Invariant: only finished things are deleted — jobs COMPLETED, FAILED or CANCELLED (with their steps and related
records), deliveries delivered, failed or dead, notifications sent, failed or skipped, and events no remaining
job points at (an event's payload and raw body live in its row, so they go with it) — each by its own last
change, in the database's clock. Deletion runs in batches of `batch` rows per statement (locks held briefly,
never the whole table), at most `max_batches` per kind per call; the rest waits for the next beat. Every row
deleted is counted in zixly_retention_deleted_total{kind}. Artifacts in S3 expire by the bucket's lifecycle
rule (terraform/modules/storage: Glacier after 90 days, deleted after 7 years), not here.
"""
from __future__ import annotations

from sqlalchemy import Integer, bindparam, delete, exists, func, select

from core.inbound.models import InboundEvent
from core.jobs.models import Job, JobStep
from core.jobs.statuses import CANCELLED, COMPLETED, FAILED
from core.notify.models import Notification
from core.outbound.models import Delivery
from core.platform import metrics
from core.tenants.plans import plan_limits
from tenancy.context import current_tenant
from tenancy.db import tenant_transaction

KINDS = ("deliveries", "job_steps", "jobs", "events", "notifications")  # in this order: what points at what
_CUTOFF = func.now() - func.make_interval(0, 0, 0, bindparam("days", type_=Integer))
_BATCH = bindparam("batch", type_=Integer)


def _old(table, when, *finished):
    """The ids of up to :batch finished rows of `table` last changed before the cutoff, locked for deletion."""
    return (select(table.c.id).where(when < _CUTOFF, *finished).order_by(when).limit(_BATCH)
            .with_for_update(skip_locked=True).scalar_subquery())


_jobs, _steps, _events = Job.__table__, JobStep.__table__, InboundEvent.__table__
_deliveries, _notifications = Delivery.__table__, Notification.__table__
_finished_job = _jobs.c.status.in_((COMPLETED, FAILED, CANCELLED))
_old_job = (_jobs.c.updated_at < _CUTOFF, _finished_job)

STATEMENTS = {
    "deliveries": delete(_deliveries).where(_deliveries.c.id.in_(_old(
        _deliveries, _deliveries.c.updated_at, _deliveries.c.status.in_(("delivered", "failed", "dead"))))),
    # a finished job's steps first (counted on their own), then the job (its related records by cascade)
    "job_steps": delete(_steps).where(_steps.c.id.in_(
        select(_steps.c.id).join(_jobs, _jobs.c.id == _steps.c.job_id).where(*_old_job).limit(_BATCH)
        .with_for_update(of=_steps, skip_locked=True).scalar_subquery())),
    "jobs": delete(_jobs).where(_jobs.c.id.in_(_old(_jobs, _jobs.c.updated_at, _finished_job))),
    "events": delete(_events).where(_events.c.id.in_(_old(
        _events, _events.c.received_at, ~exists().where(_jobs.c.event_id == _events.c.id)))),
    "notifications": delete(_notifications).where(_notifications.c.id.in_(_old(
        _notifications, _notifications.c.updated_at, _notifications.c.status.in_(("sent", "failed", "skipped"))))),
}
assert set(STATEMENTS) == set(KINDS)


def enforce_retention(*, batch: int = 1000, max_batches: int = 50) -> dict[str, int]:
    """Delete the current tenant's finished rows older than its plan keeps them; answers rows deleted per kind."""
    days = plan_limits(current_tenant().plan)["retention_days"]
    deleted = dict.fromkeys(KINDS, 0)
    for kind in KINDS:
        for _ in range(max_batches):
            with tenant_transaction() as session:
                count = session.execute(STATEMENTS[kind], {"days": days, "batch": batch}).rowcount
            deleted[kind] += count
            metrics.retention_deleted.labels(kind).inc(count)
            if count < batch:
                break
    return deleted
