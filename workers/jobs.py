"""Job tasks: run one job; relay outbox messages the API could not publish (broker down)."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy.exc import InterfaceError, OperationalError

from core.execution import service as execution
from core.platform import maintenance, outbox
from core.platform.queue import celery_app


# Losing the database or broker mid-job is not the job's fault: retry the task (the job is still RUNNING,
# and a RUNNING job may be claimed again), instead of failing it.
@celery_app.task(name="zixly.tenant.run_job", ignore_result=True, autoretry_for=(OperationalError, InterfaceError),
                 retry_backoff=2, retry_backoff_max=60, max_retries=20)
def run_job(job_id: str) -> str:
    return execution.execute_job(job_id)


@celery_app.task(name="zixly.fleet.relay_outbox", ignore_result=True)
def relay_all_outboxes(min_age: float = outbox.RELAY_MIN_AGE.total_seconds()) -> dict:
    """Publish every tenant's waiting outbox messages, directly from this task (not one task per tenant)."""
    return maintenance.for_each_active_tenant(lambda: outbox.relay(min_age=timedelta(seconds=min_age)))
