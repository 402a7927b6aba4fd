"""What a workflow sees while its job runs (`JobContext`): its settings and connections by role, reads through a
connection, writes through the ordered outbound queues, once-only steps, its polling cursor, and the execution
record (steps, related records, artifacts). Provider errors become the job's errors (`provider_errors`)."""
from __future__ import annotations

from sqlalchemy import bindparam, insert, select, update

from connectors.errors import ConnectorError, InvalidOptions, RateLimited, ReauthRequired, Transient
from core.connections import api_calls, store
from core.execution.lease import Lease, held_by_owner, lease_end
from core.inbound import polling
from core.jobs import artifacts
from core.jobs.models import Job, JobStep, RelatedRecord
from core.outbound import writes
from core.platform.errors import PermanentError, RetryableError
from core.workflows.models import WorkflowSetting
from tenancy.db import tenant_autocommit, tenant_transaction


class JobContext:
    """What a workflow sees: its settings, its connections by role, once-only steps, and the execution record
    (steps, related records, artifacts)."""

    def __init__(self, job: Job, *, done: dict, setting: WorkflowSetting | None, lease: Lease):
        """`done` (step name -> output, from earlier attempts) and `setting` as the claim read them; `lease` is
        the claim's."""
        self.job, self.job_id, self.attempt, self.workflow = job, job.id, job.attempts, job.workflow
        self._done, self.setting, self.lease = done, setting, lease
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
        self.lease.check()
        try:
            output = fn()
        except Exception as exc:
            self._record(name, "failed", {"error": f"{type(exc).__name__}: {exc}"[:2000]})
            raise
        self._record(name, "done", {"output": output})
        self._done[name] = output
        return output

    def _record(self, name, status, detail) -> None:
        """Record a step and renew the lease, in one statement; nothing is recorded by a run that lost it."""
        with tenant_autocommit() as connection:
            # parameters named after no column of jobs: Core would add one so named to the renewal's SET
            recorded = connection.execute(_STEP_STATEMENT, {**self.lease.params(), "step_attempt": self.attempt,
                                                            "step_name": name, "step_status": status,
                                                            "step_detail": detail})
            if recorded.first() is None:
                self.lease.lost = True
                self.lease.check()


# The hot path of every job is three single statements, each its own transaction in one round trip (autocommit):
# the claim, each step's record (which renews the lease), and the completion. Retries and failures (rare) take
# the ORM path in `_finish`.
_STEPS = JobStep.__table__


def _step_statement():
    renewed = (update(Job.__table__).where(*held_by_owner()).values(lease_expires_at=lease_end())
               .returning(Job.__table__.c.id).cte("renewed"))
    return (insert(_STEPS).from_select(
        ["job_id", "attempt", "name", "status", "detail"],
        select(renewed.c.id, bindparam("step_attempt", type_=_STEPS.c.attempt.type),
               bindparam("step_name", type_=_STEPS.c.name.type), bindparam("step_status", type_=_STEPS.c.status.type),
               bindparam("step_detail", type_=_STEPS.c.detail.type)))
        .returning(_STEPS.c.id))


_STEP_STATEMENT = _step_statement()


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
