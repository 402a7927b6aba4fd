"""Running a job in a worker: claim it, run its workflow step by step, record the outcome once.

Running a job twice never applies its effects twice: a finished job is not run again, a job is run by one claim
at a time (its lease, core.execution.lease: a second delivery while the lease is live is put off until after
it), and a step that completed in an earlier attempt is not repeated (its recorded output is reused). Only the
lease holder records steps and the outcome. A task's countdown stays below the broker's visibility timeout (a
longer wait is `not_before` on the job, and the task is re-scheduled until then), so the broker never hands out
a waiting task twice.
"""
from __future__ import annotations

import logging
import random
import time
from datetime import timedelta

from sqlalchemy import bindparam, case, func, literal, or_, select, update

from core.execution.context import JobContext, provider_errors
from core.events import catalogue, recorder
from core.execution.lease import Lease, LeaseLost, held_by_owner, lease_end, new_owner
from core.inbound.models import InboundEvent
from core.jobs.models import Job, JobStep
from core.jobs.service import (
    BACKOFF_BASE,
    COMPLETED,
    FAILED,
    QUEUED,
    RUN_JOB,
    RUNNING,
    TRANSITIONS,
    job_from_row,
    parse_job_id,
    transition,
)
from core.platform import metrics, outbox, signals
from core.platform.errors import PermanentError, RetryableError
from core.platform.queue import celery_app
from core.platform.runtime import settings
from core.platform.transient import TRANSIENT_ERRORS
from core.workflows.models import WorkflowSetting
from core.workflows.registry import WORKFLOWS
from tenancy.context import current_tenant
from tenancy.db import tenant_autocommit, tenant_session, tenant_transaction

log = logging.getLogger("zixly.jobs")


# A job may be claimed from these statuses (the transition table), and again while RUNNING once its lease lapsed:
# a worker died mid-job and the task was delivered again (or the sweeper re-published it).
CLAIMABLE = tuple(sorted({s for s, targets in TRANSITIONS.items() if RUNNING in targets} | {RUNNING}))
assert COMPLETED in TRANSITIONS[RUNNING]


def _claim_statement():
    """Mark the job RUNNING (one more attempt) and read what its run needs: the job, the steps earlier attempts
    finished (name -> output) and the workflow's tenant settings, in one statement."""
    jobs, steps, settings = Job.__table__, JobStep.__table__, WorkflowSetting.__table__
    job_id = bindparam("job_id", type_=jobs.c.id.type)
    now = func.now()
    free = or_(jobs.c.lease_expires_at.is_(None), jobs.c.lease_expires_at <= now)  # no live claim on it
    due = or_(jobs.c.not_before.is_(None), jobs.c.not_before <= now)  # not waiting out a retry's delay
    claimed = (update(jobs).where(jobs.c.id == job_id, jobs.c.status.in_(CLAIMABLE), free, due)
               .values(status=RUNNING, attempts=jobs.c.attempts + 1, updated_at=now, not_before=None,
                       lease_owner=bindparam("owner", type_=jobs.c.lease_owner.type), lease_expires_at=lease_end(),
                       started_at=case((jobs.c.status == RUNNING, jobs.c.started_at), else_=now))
               .returning(*jobs.c).cte("claimed"))
    done = (select(func.jsonb_object_agg(steps.c.name, steps.c.detail["output"]))
            .where(steps.c.job_id == claimed.c.id, steps.c.status == "done").scalar_subquery())
    return (select(claimed, done.label("done_steps"), *[c.label(f"setting_{c.name}") for c in settings.c])
            .select_from(claimed.outerjoin(settings, settings.c.name == claimed.c.workflow)))


def _complete_statement():
    """RUNNING -> COMPLETED with its result, and its event processed, by the lease holder only; answers the job's
    status afterwards (a job cancelled while it ran stays CANCELLED)."""
    jobs, events = Job.__table__, InboundEvent.__table__
    job_id = bindparam("job_id", type_=jobs.c.id.type)
    done = (update(jobs).where(*held_by_owner())
            .values(status=COMPLETED, result=bindparam("result", type_=jobs.c.result.type), error=None,
                    finished_at=func.now(), updated_at=func.now(), lease_owner=None, lease_expires_at=None)
            .returning(jobs.c.event_id, jobs.c.id, jobs.c.workflow, jobs.c.attempts, jobs.c.finished_at).cte("done"))
    marked = (update(events).where(events.c.id.in_(select(done.c.event_id))).values(status="processed")
              .returning(events.c.id).cte("marked"))
    now = select(literal(COMPLETED)).select_from(done).scalar_subquery()
    before = select(jobs.c.status).where(jobs.c.id == job_id).with_for_update(read=True).scalar_subquery()
    webhooks = recorder.recording(catalogue.JOB_COMPLETED, recorder.json_object(
        job_id=done.c.id, workflow=done.c.workflow, attempts=done.c.attempts, finished_at=done.c.finished_at,
        event_id=done.c.event_id), source=done, workflow=done.c.workflow)
    return select(func.coalesce(now, before), recorder.outbox_rows(webhooks)).add_cte(marked)


_CLAIM_STATEMENT, _COMPLETE_STATEMENT = _claim_statement(), _complete_statement()
_SETTING_COLUMNS = [c.key for c in WorkflowSetting.__table__.c]


def _claim(job_id, lease: Lease) -> JobContext | None:
    """Claim the job for this run under `lease`; None when it is finished, cancelled, unknown (running it again
    would repeat effects), held by a live lease or waiting for its retry."""
    with tenant_autocommit() as connection:
        row = connection.execute(_CLAIM_STATEMENT, lease.params()).mappings().first()
    if row is None:
        return None
    job = job_from_row(row)
    setting = None
    if row["setting_name"] is not None:
        setting = WorkflowSetting(**{key: row[f"setting_{key}"] for key in _SETTING_COLUMNS})
    return JobContext(job, done=dict(row["done_steps"] or {}), setting=setting, lease=lease)


def backoff(attempt: int) -> float:
    delay = BACKOFF_BASE * 2 ** (attempt - 1)
    return delay * random.uniform(0.75, 1.25)


def max_countdown() -> float:
    """The longest countdown a task may be published with: half the broker's visibility timeout (a task held
    longer by a worker waiting for its ETA would be handed to another worker too)."""
    return settings().broker_visibility_timeout / 2


def _not_claimed(job_id) -> str:
    """What a refused claim does: a finished, cancelled or unknown job is left alone; a job held by a live lease
    or waiting for its retry is re-scheduled for when the lease lapses or the wait ends (so a live run is not
    repeated, and a dead one is taken over without waiting for the sweeper)."""
    jobs = Job.__table__
    wait = func.extract("epoch", func.greatest(jobs.c.lease_expires_at, jobs.c.not_before) - func.now())
    with tenant_autocommit() as connection:
        row = connection.execute(select(jobs.c.status, wait).where(jobs.c.id == job_id)).first()
    if row is None:
        return "MISSING"
    status, seconds = row
    if status in CLAIMABLE:
        countdown = min(max(float(seconds or 0.0), 0.0) + 0.5, max_countdown())
        try:
            celery_app.send_task(RUN_JOB, args=[str(job_id)], countdown=countdown, retry=False, ignore_result=True)
        except Exception as exc:  # the broker is away: the sweeper re-publishes the job
            log.warning("could not re-schedule job %s: %s", job_id, exc)
    return status


def _finish(job_id, lease: Lease, *, result=None, error: str | None = None, retry: bool = False,
            retry_after: float | None = None) -> str:
    """Record the outcome, if this run still holds the job; answers the job's status afterwards."""
    if error is None:
        with tenant_autocommit() as connection:
            status, webhooks = connection.execute(_COMPLETE_STATEMENT, {**lease.params(), "result": result}).one()
        outbox.publish(recorder.messages(webhooks))
        return status
    message = failed = None
    with tenant_transaction() as session:
        job = session.get(Job, job_id, with_for_update=True)
        if job.status != RUNNING or job.lease_owner != lease.owner:  # cancelled while it ran, or taken over
            return job.status
        job.lease_owner = job.lease_expires_at = None
        if retry and job.attempts < job.max_attempts:
            wait = max(backoff(job.attempts), retry_after or 0.0)
            transition(job, QUEUED)
            job.error, job.not_before = error, func.now() + timedelta(seconds=wait)
            message = outbox.enqueue(session, RUN_JOB, str(job.id), countdown=min(wait, max_countdown()))
        else:
            transition(job, FAILED)
            job.error, failed = error, job
            recorder.record(session, catalogue.JOB_FAILED, {
                "job_id": str(job.id), "workflow": job.workflow, "attempts": job.attempts, "error": error[:500],
                "failed_at": job.finished_at.isoformat(), "event_id": str(job.event_id) if job.event_id else None},
                workflow=job.workflow)
        if job.event_id and job.status == FAILED:
            session.get(InboundEvent, job.event_id).status = "failed"
        status = job.status
    if message is not None:
        outbox.publish([message])
    if failed is not None:  # after commit; receivers only record, so the job's outcome stands whatever they do
        signals.emit(signals.job_failed, tenant=current_tenant(), job_id=failed.id, workflow=failed.workflow,
                     error=failed.error, attempts=failed.attempts, failed_at=failed.finished_at)
    return status


def execute_job(job_id) -> str:
    job_id = parse_job_id(job_id)
    with Lease(job_id, new_owner()) as lease:
        context = _claim(job_id, lease)
        if context is None:
            return _not_claimed(job_id)
        return _run(context, lease)


def _run(context: JobContext, lease: Lease) -> str:
    job, job_id = context.job, context.job_id
    workflow = WORKFLOWS[job.workflow]
    metrics.jobs_started.labels(job.workflow).inc()
    started = time.perf_counter()
    try:
        with provider_errors():
            result = workflow.run(context, job.input)
    except LeaseLost as exc:  # another run holds the job now (or it was cancelled): it records the outcome
        log.warning("job %s: %s", job_id, exc)
        return _job_status(job_id)
    except RetryableError as exc:
        status = _finish(job_id, lease, error=f"RetryableError: {exc}", retry=True, retry_after=exc.retry_after)
    except TRANSIENT_ERRORS as exc:  # the database or the broker was briefly away: not the job's fault
        log.warning("job %s: transient %s: %s", job_id, type(exc).__name__, exc)
        status = _finish(job_id, lease, error=f"{type(exc).__name__}: {exc}"[:2000], retry=True)
    except PermanentError as exc:
        status = _finish(job_id, lease, error=f"PermanentError: {exc}")
    except Exception as exc:  # an unexpected error is treated as permanent and kept for inspection
        log.exception("job %s failed", job_id)
        status = _finish(job_id, lease, error=f"{type(exc).__name__}: {exc}"[:2000])
    else:
        status = _finish(job_id, lease, result=result)
    seconds = time.perf_counter() - started
    _observe(job.workflow, status, seconds)
    log.info("job %s %s after %.3fs", job_id, status, seconds,
             extra={"event": "job.finished", "workflow": job.workflow, "status": status, "attempt": job.attempts})
    return status


def _job_status(job_id) -> str:
    with tenant_session() as session:
        found = session.get(Job, job_id)
    return found.status if found else "MISSING"


def _observe(workflow: str, status: str, seconds: float) -> None:
    metrics.job_duration.labels(workflow).observe(seconds)
    if status == COMPLETED:
        metrics.jobs_completed.labels(workflow).inc()
    elif status == FAILED:
        metrics.jobs_failed.labels(workflow).inc()
    if status in (COMPLETED, FAILED):
        metrics.tenant_jobs.labels(current_tenant().slug, status.lower()).inc()
