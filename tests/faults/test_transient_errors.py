"""A brief database error inside a workflow step is not the job's fault: the job retries with backoff and then
completes, on a real worker, with the step's failure and its success both recorded."""
from celery.contrib.testing.worker import start_worker
from sqlalchemy import select, text

import core.execution.service
import workers.jobs  # noqa: F401  (registers the tasks)
from core.jobs import service as jobs
from core.jobs.models import Job, JobStep
from core.platform.actors import Actor
from core.platform.queue import celery_app
from tenancy.context import tenant_context
from tenancy.db import tenant_autocommit, tenant_session
from tests.faults.conftest import wait_until


def test_a_database_error_inside_a_step_retries_the_job_which_then_completes(local_settings, make_tenant,
                                                                             probe_workflow, monkeypatch):
    local_settings()
    monkeypatch.setattr(core.execution.service, "BACKOFF_BASE", 0.05)

    def run(ctx, data):
        def body():
            if ctx.attempt == 1:  # the database drops this step's connection (as a failover or restart does)
                with tenant_autocommit() as connection:
                    connection.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))
            return {"attempt": ctx.attempt}

        return ctx.step("write", body)

    workflow = probe_workflow(run)
    t = make_tenant()

    def finished():
        with tenant_context(t.ref), tenant_session() as session:
            found = session.get(Job, job.id)
            return found if found.status in ("COMPLETED", "FAILED") else None

    with start_worker(celery_app, pool="threads", concurrency=2, perform_ping_check=False, shutdown_timeout=10):
        with tenant_context(t.ref):
            job = jobs.create_job(workflow=workflow, data={}, actor=Actor("system", "faults"))
        assert wait_until(finished, timeout=60)
    done = finished()
    with tenant_context(t.ref), tenant_session() as session:
        steps = [(s.attempt, s.status) for s in
                 session.scalars(select(JobStep).where(JobStep.job_id == job.id).order_by(JobStep.id))]
    assert (done.status, done.attempts, done.result) == ("COMPLETED", 2, {"attempt": 2}), done.error
    assert steps == [(1, "failed"), (2, "done")]
