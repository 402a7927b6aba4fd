"""Job tasks: admit a job to its tenant's turn, run the next tenant's next job (core.platform.fair_queue); relay
outbox messages the API could not publish (broker down); re-publish stranded jobs (the broker lost their task)."""
from __future__ import annotations

from datetime import timedelta

from core.execution import turns
from core.jobs import sweeper
from core.platform import fair_queue, maintenance, outbox
from core.platform.queue import celery_app
from core.platform.transient import TRANSIENT_ERRORS


@celery_app.task(name=fair_queue.RUN_JOB, ignore_result=True, autoretry_for=TRANSIENT_ERRORS,
                 retry_backoff=2, retry_backoff_max=60, max_retries=20)
def run_job(job_id: str) -> int:
    """A job's countdown ended (a retry's backoff, a live lease to wait out): it joins its tenant's turn."""
    return fair_queue.admit(job_id)


# Losing the database or broker outside the workflow (the claim, the outcome) is not the job's fault: retry the
# turn (it keeps its task id, so it runs the job it took; a RUNNING job is claimed again once its lease lapsed),
# instead of failing it; the sweeper re-publishes a job whose turn gave up. Inside the workflow such an error is
# a retry of the job (core.execution).
@celery_app.task(name=fair_queue.TURN_TASK, bind=True, ignore_result=True, autoretry_for=TRANSIENT_ERRORS,
                 retry_backoff=2, retry_backoff_max=60, max_retries=20)
def run_next_job(self) -> str:
    return turns.run_next_job(self.request.id)


@celery_app.task(name="zixly.fleet.relay_outbox", ignore_result=True)
def relay_all_outboxes(min_age: float = outbox.RELAY_MIN_AGE.total_seconds()) -> dict:
    """Publish every tenant's waiting outbox messages, directly from this task (not one task per tenant)."""
    return maintenance.for_each_active_tenant(lambda: outbox.relay(min_age=timedelta(seconds=min_age)))


@celery_app.task(name="zixly.fleet.sweep_stranded_jobs", ignore_result=True)
def sweep_stranded_jobs() -> dict:
    """Re-publish every tenant's stranded jobs (core.jobs.sweeper), directly from this task; {slug: counts} of
    the tenants that had any."""
    swept = maintenance.for_each_active_tenant(sweeper.sweep_stranded_jobs)
    return {slug: counts for slug, counts in swept.items() if any(counts.values())}
