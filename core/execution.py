"""Running a job in a worker: claim it, run its workflow step by step, record the outcome once.

Running a job twice never applies its effects twice: a finished job is not run again, and a step that
completed in an earlier attempt is not repeated (its recorded output is reused).
"""
from __future__ import annotations

import logging
import random
import time

from sqlalchemy import select

from core import metrics, outbox, signals
from core.errors import PermanentError, RetryableError
from core.jobs import BACKOFF_BASE, COMPLETED, FAILED, QUEUED, RUN_JOB, RUNNING, parse_job_id, transition
from core.models import InboundEvent, Job, JobStep
from core.workflows import WORKFLOWS
from tenancy.context import current_tenant
from tenancy.db import tenant_session, tenant_transaction

log = logging.getLogger("zixly.jobs")


class JobContext:
    def __init__(self, job: Job):
        self.job_id, self.attempt = job.id, job.attempts
        with tenant_session() as session:
            rows = session.scalars(select(JobStep).where(JobStep.job_id == job.id, JobStep.status == "done"))
            self._done = {step.name: step.detail.get("output") for step in rows}

    def step(self, name: str, fn):
        """Run fn once per job: a step recorded as done is skipped and its output returned."""
        if name in self._done:
            return self._done[name]
        try:
            output = fn()
        except Exception as exc:
            self._record(name, "failed", {"error": f"{type(exc).__name__}: {exc}"[:2000]})
            raise
        self._record(name, "done", {"output": output})
        self._done[name] = output
        return output

    def _record(self, name, status, detail) -> None:
        with tenant_transaction() as session:
            session.add(JobStep(job_id=self.job_id, attempt=self.attempt, name=name, status=status, detail=detail))


def _claim(job_id) -> Job | None:
    with tenant_transaction() as session:
        job = session.get(Job, job_id, with_for_update=True)
        if job is None or job.status not in (QUEUED, RUNNING):
            return None  # finished, cancelled or unknown: running it again would repeat effects
        if job.status == QUEUED:
            transition(job, RUNNING)
        job.attempts += 1  # RUNNING already: a worker died mid-job and the task was delivered again
        return job


def backoff(attempt: int) -> float:
    delay = BACKOFF_BASE * 2 ** (attempt - 1)
    return delay * random.uniform(0.75, 1.25)


def _finish(job_id, *, result=None, error: str | None = None, retry: bool = False) -> str:
    message = failed = None
    with tenant_transaction() as session:
        job = session.get(Job, job_id, with_for_update=True)
        if job.status != RUNNING:  # cancelled while it ran: keep the cancellation
            return job.status
        if error is None:
            transition(job, COMPLETED)
            job.result, job.error = result, None
        elif retry and job.attempts < job.max_attempts:
            transition(job, QUEUED)
            job.error = error
            message = outbox.enqueue(session, RUN_JOB, str(job.id), countdown=backoff(job.attempts))
        else:
            transition(job, FAILED)
            job.error, failed = error, job
        if job.event_id and job.status in (COMPLETED, FAILED):
            event = session.get(InboundEvent, job.event_id)
            event.status = "processed" if job.status == COMPLETED else "failed"
        status = job.status
    if message is not None:
        outbox.publish([message])
    if failed is not None:  # after commit; receivers only record, so the job's outcome stands whatever they do
        signals.emit(signals.job_failed, tenant=current_tenant(), job_id=failed.id, workflow=failed.workflow,
                     error=failed.error, attempts=failed.attempts, failed_at=failed.finished_at)
    return status


def execute_job(job_id) -> str:
    job_id = parse_job_id(job_id)
    job = _claim(job_id)
    if job is None:
        with tenant_session() as session:
            found = session.get(Job, job_id)
        return found.status if found else "MISSING"
    workflow = WORKFLOWS[job.workflow]
    metrics.jobs_started.labels(job.workflow).inc()
    started = time.perf_counter()
    try:
        result = workflow.run(JobContext(job), job.input)
    except RetryableError as exc:
        status = _finish(job_id, error=f"RetryableError: {exc}", retry=True)
    except PermanentError as exc:
        status = _finish(job_id, error=f"PermanentError: {exc}")
    except Exception as exc:  # an unexpected error is treated as permanent and kept for inspection
        log.exception("job %s failed", job_id)
        status = _finish(job_id, error=f"{type(exc).__name__}: {exc}"[:2000])
    else:
        status = _finish(job_id, result=result)
    seconds = time.perf_counter() - started
    _observe(job.workflow, status, seconds)
    log.info("job %s %s after %.3fs", job_id, status, seconds,
             extra={"event": "job.finished", "workflow": job.workflow, "status": status, "attempt": job.attempts})
    return status


def _observe(workflow: str, status: str, seconds: float) -> None:
    metrics.job_duration.labels(workflow).observe(seconds)
    if status == COMPLETED:
        metrics.jobs_completed.labels(workflow).inc()
    elif status == FAILED:
        metrics.jobs_failed.labels(workflow).inc()
    if status in (COMPLETED, FAILED):
        metrics.tenant_jobs.labels(current_tenant().slug, status.lower()).inc()
