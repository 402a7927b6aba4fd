"""Running a job in a worker: claim it, run its workflow step by step, record the outcome once.

Running a job twice never applies its effects twice: a finished job is not run again, and a step that
completed in an earlier attempt is not repeated (its recorded output is reused).
"""
from __future__ import annotations

import logging
import random
import time

from sqlalchemy import bindparam, case, func, insert, literal, select, update

from connectors.errors import ConnectorError, InvalidOptions, RateLimited, ReauthRequired, Transient
from core.connections import api_calls, store
from core.inbound import polling
from core.inbound.models import InboundEvent
from core.jobs import artifacts
from core.jobs.models import Job, JobStep, RelatedRecord
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
from core.outbound import writes
from core.platform import metrics, outbox, signals
from core.platform.errors import PermanentError, RetryableError
from core.workflows.models import WorkflowSetting
from core.workflows.registry import WORKFLOWS
from tenancy.context import current_tenant
from tenancy.db import tenant_autocommit, tenant_session, tenant_transaction

log = logging.getLogger("zixly.jobs")


class JobContext:
    """What a workflow sees: its settings, its connections by role, once-only steps, and the execution record
    (steps, related records, artifacts)."""

    def __init__(self, job: Job, *, done: dict, setting: WorkflowSetting | None):
        """`done` (step name -> output, from earlier attempts) and `setting` as the claim read them."""
        self.job, self.job_id, self.attempt, self.workflow = job, job.id, job.attempts, job.workflow
        self._done, self.setting = done, setting
        self.mappings = dict(self.setting.mappings or {}) if self.setting else {}

    def connection(self, role: str):
        bound = (self.setting.connections or {}) if self.setting else {}
        if role not in bound:
            raise PermanentError(f"workflow {self.workflow} has no {role!r} connection bound; set it with "
                                 f"PUT /v1/workflows/{self.workflow}")
        return bound[role]

    def call(self, role: str, operation: str, *args, **kwargs):
        """A read (or idempotent call) against the connection bound to `role`, with typed errors translated."""
        with provider_errors():
            return api_calls.call(self.connection(role), operation, *args, **kwargs)

    def deliver(self, name: str, role: str, *, record_key: str, operation: str, args: dict, timeout: float = 30.0):
        """A write, sent through the provider's ordered outbound queue; runs once per job (the delivery is
        de-duplicated on job and step) and returns the provider's answer."""
        def send():
            conn_id = self.connection(role)
            provider = store.get_connection(conn_id).provider
            delivery_id = writes.request(provider=provider, connection_id=conn_id, record_key=record_key,
                                           operation=operation, args=args, dedup_key=f"{self.job_id}:{name}",
                                           job_id=self.job_id)
            try:
                delivery = writes.wait(delivery_id, timeout=timeout)
            except TimeoutError:
                raise RetryableError(f"delivery {delivery_id} ({operation}) not done yet") from None
            if delivery.status != "delivered":
                raise PermanentError(f"delivery {delivery_id} ({operation}) {delivery.status}: {delivery.last_error}")
            return delivery.response

        return self.step(name, send)

    def poll_cursor(self, role: str) -> str | None:
        """How far this (polling) workflow has read the connection bound to `role`; None before its first run."""
        return polling.get_cursor(self.workflow, self.connection(role))

    def record_polled(self, role: str, *, provider: str, event_type: str, records: list[dict], cursor_of,
                      previous: str) -> dict:
        """Store what a polling run read as events and move its cursor, in one transaction (core.inbound.polling)."""
        return polling.record_polled(workflow=self.workflow, connection_id=self.connection(role), provider=provider,
                                     event_type=event_type, records=records, cursor_of=cursor_of, previous=previous)

    def related(self, system: str, record_type: str, record_id, action: str, **detail) -> None:
        """Note an external record this job read, created or updated (the job's "related records")."""
        with tenant_transaction() as session:
            session.add(RelatedRecord(job_id=self.job_id, system=system, record_type=record_type,
                                      record_id=str(record_id), action=action, detail=detail))

    def artifact(self, name: str, body: bytes, content_type: str = "application/json") -> str:
        return artifacts.put(self.job_id, name, body, content_type)

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
        with tenant_autocommit() as connection:
            connection.execute(_STEP_STATEMENT, {"job_id": self.job_id, "attempt": self.attempt, "name": name,
                                                 "status": status, "detail": detail})


# The hot path of every job is three single statements, each its own transaction in one round trip (autocommit):
# the claim, each step's record, and the completion. Retries and failures (rare) take the ORM path in `_finish`.
_STEPS = JobStep.__table__
_STEP_STATEMENT = insert(_STEPS).values(
    job_id=bindparam("job_id", type_=_STEPS.c.job_id.type), attempt=bindparam("attempt"), name=bindparam("name"),
    status=bindparam("status"), detail=bindparam("detail", type_=_STEPS.c.detail.type))
# A job may be claimed from these statuses (the transition table), and again while RUNNING: a worker died mid-job
# and the task was delivered again.
CLAIMABLE = tuple(sorted({s for s, targets in TRANSITIONS.items() if RUNNING in targets} | {RUNNING}))
assert COMPLETED in TRANSITIONS[RUNNING]


def _claim_statement():
    """Mark the job RUNNING (one more attempt) and read what its run needs: the job, the steps earlier attempts
    finished (name -> output) and the workflow's tenant settings, in one statement."""
    jobs, steps, settings = Job.__table__, JobStep.__table__, WorkflowSetting.__table__
    job_id = bindparam("job_id", type_=jobs.c.id.type)
    claimed = (update(jobs).where(jobs.c.id == job_id, jobs.c.status.in_(CLAIMABLE))
               .values(status=RUNNING, attempts=jobs.c.attempts + 1, updated_at=func.now(),
                       started_at=case((jobs.c.status == RUNNING, jobs.c.started_at), else_=func.now()))
               .returning(*jobs.c).cte("claimed"))
    done = (select(func.jsonb_object_agg(steps.c.name, steps.c.detail["output"]))
            .where(steps.c.job_id == claimed.c.id, steps.c.status == "done").scalar_subquery())
    return (select(claimed, done.label("done_steps"), *[c.label(f"setting_{c.name}") for c in settings.c])
            .select_from(claimed.outerjoin(settings, settings.c.name == claimed.c.workflow)))


def _complete_statement():
    """RUNNING -> COMPLETED with its result, and its event processed; answers the job's status afterwards (a job
    cancelled while it ran stays CANCELLED)."""
    jobs, events = Job.__table__, InboundEvent.__table__
    job_id = bindparam("job_id", type_=jobs.c.id.type)
    done = (update(jobs).where(jobs.c.id == job_id, jobs.c.status == RUNNING)
            .values(status=COMPLETED, result=bindparam("result", type_=jobs.c.result.type), error=None,
                    finished_at=func.now(), updated_at=func.now())
            .returning(jobs.c.event_id).cte("done"))
    marked = (update(events).where(events.c.id.in_(select(done.c.event_id))).values(status="processed")
              .returning(events.c.id).cte("marked"))
    now = select(literal(COMPLETED)).select_from(done).scalar_subquery()
    before = select(jobs.c.status).where(jobs.c.id == job_id).with_for_update(read=True).scalar_subquery()
    return select(func.coalesce(now, before)).add_cte(marked)


_CLAIM_STATEMENT, _COMPLETE_STATEMENT = _claim_statement(), _complete_statement()
_SETTING_COLUMNS = [c.key for c in WorkflowSetting.__table__.c]


def _claim(job_id) -> JobContext | None:
    """Claim the job for this run; None when it is finished, cancelled or unknown (running it again would repeat
    effects)."""
    with tenant_autocommit() as connection:
        row = connection.execute(_CLAIM_STATEMENT, {"job_id": job_id}).mappings().first()
    if row is None:
        return None
    job = job_from_row(row)
    setting = None
    if row["setting_name"] is not None:
        setting = WorkflowSetting(**{key: row[f"setting_{key}"] for key in _SETTING_COLUMNS})
    return JobContext(job, done=dict(row["done_steps"] or {}), setting=setting)


def backoff(attempt: int) -> float:
    delay = BACKOFF_BASE * 2 ** (attempt - 1)
    return delay * random.uniform(0.75, 1.25)


class provider_errors:
    """Translate a connector's typed errors into the job's: wait as long as the provider asks, retry what may
    pass, fail at once what cannot (a connection needing re-authorisation fails the job with a clear error
    instead of retrying forever)."""

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is None or not isinstance(exc, (ConnectorError, InvalidOptions)):
            return False
        if isinstance(exc, RateLimited):
            raise RetryableError(f"rate limited by {exc.provider}", retry_after=exc.retry_after) from exc
        if isinstance(exc, Transient):
            raise RetryableError(str(exc)) from exc
        if isinstance(exc, ReauthRequired):
            raise PermanentError(f"the {exc.provider} connection needs re-authorisation: {exc.detail}") from exc
        raise PermanentError(str(exc)) from exc


def _finish(job_id, *, result=None, error: str | None = None, retry: bool = False,
            retry_after: float | None = None) -> str:
    if error is None:
        with tenant_autocommit() as connection:
            return connection.execute(_COMPLETE_STATEMENT, {"job_id": job_id, "result": result}).scalar_one()
    message = failed = None
    with tenant_transaction() as session:
        job = session.get(Job, job_id, with_for_update=True)
        if job.status != RUNNING:  # cancelled while it ran: keep the cancellation
            return job.status
        if retry and job.attempts < job.max_attempts:
            transition(job, QUEUED)
            job.error = error
            message = outbox.enqueue(session, RUN_JOB, str(job.id),
                                     countdown=max(backoff(job.attempts), retry_after or 0.0))
        else:
            transition(job, FAILED)
            job.error, failed = error, job
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
    context = _claim(job_id)
    if context is None:
        with tenant_session() as session:
            found = session.get(Job, job_id)
        return found.status if found else "MISSING"
    job = context.job
    workflow = WORKFLOWS[job.workflow]
    metrics.jobs_started.labels(job.workflow).inc()
    started = time.perf_counter()
    try:
        with provider_errors():
            result = workflow.run(context, job.input)
    except RetryableError as exc:
        status = _finish(job_id, error=f"RetryableError: {exc}", retry=True, retry_after=exc.retry_after)
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
