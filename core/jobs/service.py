"""Jobs: create, read, cancel, retry, and execute — with one transition table for every status change."""
from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime

from sqlalchemy import String, bindparam, cast, func, insert, literal, select, true, tuple_

from core.jobs.models import Job, JobStep, RelatedRecord
from core.platform import metrics, outbox
from core.platform.actors import Actor
from core.platform.errors import Conflict, Invalid, NotFound
from core.platform.models import OutboxMessage
from core.workflows.models import WorkflowSetting
from core.workflows.registry import WORKFLOWS
from tenancy.db import tenant_autocommit, tenant_session, tenant_transaction

log = logging.getLogger("zixly.jobs")
RUN_JOB = "zixly.tenant.run_job"
QUEUED, RUNNING, COMPLETED, FAILED, CANCELLED = "QUEUED", "RUNNING", "COMPLETED", "FAILED", "CANCELLED"
STATUSES = (QUEUED, RUNNING, COMPLETED, FAILED, CANCELLED)
TRANSITIONS = {
    QUEUED: {RUNNING, CANCELLED},
    RUNNING: {COMPLETED, FAILED, CANCELLED, QUEUED},  # QUEUED: waiting for a retry after a retryable error
    FAILED: {QUEUED},  # manual retry
    CANCELLED: {QUEUED},  # manual retry
    COMPLETED: set(),
}
BACKOFF_BASE = 2.0
DEFAULT_MAX_ATTEMPTS = 4


class IllegalTransition(Conflict):
    code = "illegal-transition"


class UnknownWorkflow(Invalid):
    code = "unknown-workflow"


class JobNotFound(NotFound):
    code = "job-not-found"


def transition(job: Job, to: str) -> None:
    if to not in TRANSITIONS[job.status]:
        raise IllegalTransition(f"a {job.status} job cannot become {to}")
    job.status = to
    now = datetime.now(UTC)
    if to == RUNNING:
        job.started_at = now
    elif to in (COMPLETED, FAILED, CANCELLED):
        job.finished_at = now


def parse_job_id(job_id) -> uuid.UUID:
    try:
        return job_id if isinstance(job_id, uuid.UUID) else uuid.UUID(str(job_id))
    except ValueError:
        raise JobNotFound(f"no job {job_id}") from None


def _known(workflow: str) -> None:
    if workflow not in WORKFLOWS:
        raise UnknownWorkflow(f"unknown workflow {workflow!r}; known: {', '.join(sorted(WORKFLOWS))}")


_JOB_COLUMNS = [c.key for c in Job.__table__.c]


def job_from_row(row) -> Job:
    """A (detached) Job from a Core row holding the job's columns, as a `RETURNING` gives them."""
    return Job(**{key: row[key] for key in _JOB_COLUMNS})


def add_job(session, *, workflow: str, data: dict, created_by: str | None, event_id=None):
    """Add a QUEUED job and its outbox message to the caller's tenant transaction; return both."""
    _known(workflow)
    setting = session.get(WorkflowSetting, workflow)
    job = Job(id=uuid.uuid4(), workflow=workflow, input=data, status=QUEUED, event_id=event_id,
              created_by=created_by, max_attempts=setting.max_attempts if setting else DEFAULT_MAX_ATTEMPTS)
    session.add(job)
    metrics.jobs_queued.labels(workflow).inc()
    return job, outbox.enqueue(session, RUN_JOB, str(job.id))


def _create_statement():
    """One statement adding a QUEUED job (its max_attempts from the workflow's settings) and its outbox message;
    answers the whole job row. Built once."""
    jobs, box, settings = Job.__table__, OutboxMessage.__table__, WorkflowSetting.__table__
    workflow = bindparam("workflow", type_=jobs.c.workflow.type)
    max_attempts = func.coalesce(select(settings.c.max_attempts).where(settings.c.name == workflow)
                                 .scalar_subquery(), DEFAULT_MAX_ATTEMPTS)
    job = insert(jobs).values(
        id=bindparam("job_id", type_=jobs.c.id.type), workflow=workflow,
        input=bindparam("input", type_=jobs.c.input.type), status=QUEUED, attempts=0, max_attempts=max_attempts,
        created_by=bindparam("created_by")).returning(*jobs.c).cte("job")
    message = (insert(box).from_select(["task", "args", "countdown"],
                                       select(literal(RUN_JOB), func.jsonb_build_array(cast(job.c.id, String)),
                                              literal(0.0)).select_from(job))
               .returning(box.c.id).cte("message"))
    return select(job, message.c.id.label("outbox_id")).select_from(job.join(message, true()))


_CREATE_STATEMENT = _create_statement()


def create_job(*, workflow: str, data: dict, actor: Actor) -> Job:
    """A QUEUED job and its outbox message in one statement (its own transaction, one round trip), published
    after it commits."""
    _known(workflow)
    job_id = uuid.uuid4()
    with tenant_autocommit() as connection:
        row = connection.execute(_CREATE_STATEMENT, {"job_id": job_id, "workflow": workflow, "input": data,
                                                     "created_by": f"{actor.type}:{actor.id}"}).mappings().one()
    metrics.jobs_queued.labels(workflow).inc()
    outbox.publish([OutboxMessage(id=row["outbox_id"], task=RUN_JOB, args=[str(job_id)], countdown=0.0)])
    return job_from_row(row)


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
    query = select(Job).order_by(Job.created_at.desc(), Job.id.desc()).limit(limit)
    if before:
        query = query.where(tuple_(Job.created_at, Job.id) < tuple_(*before))
    for column, value in ((Job.status, status), (Job.workflow, workflow)):
        if value:
            query = query.where(column == value)
    if created_after:
        query = query.where(Job.created_at >= created_after)
    if created_before:
        query = query.where(Job.created_at < created_before)
    with tenant_session() as session:
        return list(session.scalars(query))


def _change(job_id, to: str, *, publish: bool) -> Job:
    with tenant_transaction() as session:
        job = session.get(Job, parse_job_id(job_id), with_for_update=True)
        if job is None:
            raise JobNotFound(f"no job {job_id}")
        transition(job, to)
        message = outbox.enqueue(session, RUN_JOB, str(job.id)) if publish else None
        if to == QUEUED:
            job.attempts, job.finished_at = 0, None
    if message is not None:
        outbox.publish([message])
    return job


def cancel_job(job_id) -> Job:
    return _change(job_id, CANCELLED, publish=False)


def retry_job(job_id) -> Job:
    return _change(job_id, QUEUED, publish=True)
