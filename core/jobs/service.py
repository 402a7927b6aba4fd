"""Jobs as the API sees them: read, list (newest first), cancel and retry, with every status change through the
one transition table (core.jobs.statuses) and every new job created one way (core.jobs.creation). This module is
the jobs domain's public surface: it names what the others may use."""
from __future__ import annotations

import logging
import uuid

from sqlalchemy import select

from core.jobs.creation import DEFAULT_MAX_ATTEMPTS, RUN_JOB, UnknownWorkflow, add_jobs, create_job, job_from_row
from core.jobs.models import Job, JobStep, RelatedRecord
from core.jobs.statuses import (
    CANCELLED,
    COMPLETED,
    FAILED,
    QUEUED,
    RUNNING,
    STATUSES,
    TRANSITIONS,
    IllegalTransition,
    transition,
)
from core.platform import outbox
from core.platform.errors import NotFound
from core.platform.ids import parse_uuid
from core.platform.pages import between, matching, newest_first
from tenancy.db import tenant_session, tenant_transaction

__all__ = ["BACKOFF_BASE", "CANCELLED", "COMPLETED", "DEFAULT_MAX_ATTEMPTS", "FAILED", "QUEUED", "RUNNING",
           "RUN_JOB", "STATUSES", "TRANSITIONS", "IllegalTransition", "JobNotFound", "UnknownWorkflow", "add_jobs",
           "cancel_job", "create_job", "get_job", "job_from_row", "list_jobs", "parse_job_id", "related_records",
           "retry_job", "transition"]
log = logging.getLogger("zixly.jobs")
BACKOFF_BASE = 2.0


class JobNotFound(NotFound):
    code = "job-not-found"


def parse_job_id(job_id) -> uuid.UUID:
    return parse_uuid(job_id, JobNotFound, f"no job {job_id}")


def get_job(job_id) -> tuple[Job, list[JobStep]]:
    ident = parse_job_id(job_id)
    with tenant_session() as session:
        job = session.get(Job, ident)
        if job is None:
            raise JobNotFound(f"no job {job_id}")
        steps = list(session.scalars(select(JobStep).where(JobStep.job_id == ident).order_by(JobStep.id)))
    return job, steps


def related_records(job_id) -> list[RelatedRecord]:
    with tenant_session() as session:
        return list(session.scalars(select(RelatedRecord).where(RelatedRecord.job_id == job_id)
                                    .order_by(RelatedRecord.id)))


def list_jobs(*, limit: int, before: tuple | None = None, status=None, workflow=None,
              created_after=None, created_before=None) -> list[Job]:
    query = between(matching(select(Job), (Job.status, status), (Job.workflow, workflow)), Job.created_at,
                    created_after, created_before)
    query = newest_first(query, Job.created_at, Job.id, limit=limit, before=before)
    with tenant_session() as session:
        return list(session.scalars(query))


def _change(job_id, to: str, *, publish: bool, only_from: tuple[str, ...] | None = None) -> Job:
    with tenant_transaction() as session:
        job = session.get(Job, parse_job_id(job_id), with_for_update=True)
        if job is None:
            raise JobNotFound(f"no job {job_id}")
        if only_from is not None and job.status not in only_from:
            raise IllegalTransition(f"a {job.status} job cannot be retried; only {' or '.join(only_from)} jobs can")
        transition(job, to)
        message = outbox.enqueue(session, RUN_JOB, str(job.id)) if publish else None
        if to == QUEUED:  # a live lease is kept: a run still going holds the job until it lapses
            job.attempts, job.finished_at, job.not_before = 0, None, None
    if message is not None:
        outbox.publish([message])
    return job


def cancel_job(job_id) -> Job:
    return _change(job_id, CANCELLED, publish=False)


def retry_job(job_id) -> Job:
    """Queue a FAILED or CANCELLED job again. A RUNNING job is not retried by hand (RUNNING -> QUEUED is the
    worker's own transition, after a retryable error): 409, nothing changed."""
    return _change(job_id, QUEUED, publish=True, only_from=(FAILED, CANCELLED))
