"""The one way a job is created: QUEUED, with its workflow's max attempts, and its outbox message (the `run_job`
task), written by one SQL shape (`queue_ctes`) in the caller's statement — so a job is never committed without
the message that runs it, nor a message without its job. `create_job` (the API), `add_jobs` (a caller's
transaction: replays, schedules) and the inbox's one-statement-per-event ingest all build on it.
"""
from __future__ import annotations

import uuid

from sqlalchemy import String, bindparam, cast, column, func, insert, literal, select
from sqlalchemy.dialects.postgresql import ARRAY

from core.jobs.models import Job
from core.jobs.statuses import QUEUED
from core.platform import fair_queue, metrics, outbox
from core.platform.actors import Actor
from core.platform.errors import Invalid
from core.platform.models import OutboxMessage
from core.workflows.models import WorkflowSetting
from core.workflows.registry import WORKFLOWS
from tenancy.db import tenant_autocommit

RUN_JOB = fair_queue.RUN_JOB  # the outbox admits it to its tenant's turn (core.platform.fair_queue)
DEFAULT_MAX_ATTEMPTS = 4
_JOBS, _BOX, _SETTINGS = Job.__table__, OutboxMessage.__table__, WorkflowSetting.__table__
_JOB_COLUMNS = [c.key for c in _JOBS.c]


class UnknownWorkflow(Invalid):
    code = "unknown-workflow"


def known(workflow: str) -> None:
    if workflow not in WORKFLOWS:
        raise UnknownWorkflow(f"unknown workflow {workflow!r}; known: {', '.join(sorted(WORKFLOWS))}")


def job_from_row(row) -> Job:
    """A (detached) Job from a Core row holding the job's columns, as a `RETURNING` gives them."""
    return Job(**{key: row[key] for key in _JOB_COLUMNS})


def starts():
    """The jobs to add, from the parameters :job_ids and :workflows (arrays, one entry per job)."""
    rows = func.unnest(bindparam("job_ids", type_=ARRAY(_JOBS.c.id.type)),
                       bindparam("workflows", type_=ARRAY(_JOBS.c.workflow.type))).table_valued(
        column("job_id", _JOBS.c.id.type), column("workflow", _JOBS.c.workflow.type)).render_derived(
        name="starts", with_types=False)
    return rows


def queue_ctes(rows, event_id=None, *, select_from=None):
    """INSERT a QUEUED job per row of `rows` (from `starts`; joined as `select_from` says), with :input and
    :created_by, `event_id` (a column or a parameter) as the event that started it and its max attempts from the
    workflow's settings, and its outbox message: answers the (jobs, messages) CTEs, RETURNING every job column and
    the messages' (id, args)."""
    source = select_from if select_from is not None else rows
    max_attempts = func.coalesce(select(_SETTINGS.c.max_attempts).where(_SETTINGS.c.name == rows.c.workflow)
                                 .scalar_subquery(), DEFAULT_MAX_ATTEMPTS)
    jobs = (insert(_JOBS).from_select(
        ["id", "workflow", "input", "status", "event_id", "attempts", "max_attempts", "created_by"],
        select(rows.c.job_id, rows.c.workflow, bindparam("input", type_=_JOBS.c.input.type), literal(QUEUED),
               event_id if event_id is not None else literal(None, _JOBS.c.event_id.type), literal(0), max_attempts,
               bindparam("created_by", type_=_JOBS.c.created_by.type)).select_from(source))
        .returning(*_JOBS.c).cte("jobs"))
    messages = (insert(_BOX).from_select(["task", "args", "countdown"],
                                         select(literal(RUN_JOB), func.jsonb_build_array(cast(jobs.c.id, String)),
                                                literal(0.0)).select_from(jobs))
                .returning(_BOX.c.id, _BOX.c.args).cte("messages"))
    return jobs, messages


def _add_statement():
    rows = starts()
    jobs, messages = queue_ctes(rows, bindparam("event_id", type_=_JOBS.c.event_id.type))
    return (select(jobs, messages.c.id.label("outbox_id"))
            .select_from(jobs.join(messages, messages.c.args[0].astext == cast(jobs.c.id, String))))


_ADD_STATEMENT = _add_statement()


def add_jobs(connection, *, workflows: list[str], data: dict, created_by: str | None,
             event_id=None) -> list[tuple[Job, OutboxMessage]]:
    """With the caller's Core connection or ORM session (autocommit, or a transaction the caller commits): add
    a QUEUED job per workflow with its outbox message, in one statement; publish the messages after commit."""
    for workflow in workflows:
        known(workflow)
    if not workflows:
        return []
    rows = connection.execute(_ADD_STATEMENT, {"job_ids": [uuid.uuid4() for _ in workflows], "workflows": workflows,
                                               "input": data, "created_by": created_by, "event_id": event_id})
    added = [(job_from_row(row), OutboxMessage(id=row["outbox_id"], task=RUN_JOB, args=[str(row["id"])],
                                               countdown=0.0)) for row in rows.mappings()]
    for job, _ in added:
        metrics.jobs_queued.labels(job.workflow).inc()
    return added


def create_job(*, workflow: str, data: dict, actor: Actor) -> Job:
    """A QUEUED job and its outbox message in one statement (its own transaction, one round trip), published
    after it commits."""
    with tenant_autocommit() as connection:
        [(job, message)] = add_jobs(connection, workflows=[workflow], data=data,
                                    created_by=f"{actor.type}:{actor.id}")
    outbox.publish([message])
    return job
