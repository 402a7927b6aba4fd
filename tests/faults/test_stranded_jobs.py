"""Redis restarted with its data lost while jobs are queued: the sweeper re-publishes every stranded job (and a
RUNNING one whose worker died), through the outbox, and each completes once; nothing else is swept."""
from datetime import timedelta

from celery.contrib.testing.worker import start_worker
from sqlalchemy import func, select

import workers.jobs  # noqa: F401  (registers the tasks)
from core.jobs import service as jobs
from core.jobs import sweeper
from core.jobs.models import Job, JobStep
from core.platform import metrics, outbox
from core.platform.actors import Actor
from core.platform.models import OutboxMessage
from core.platform.queue import celery_app
from tenancy.context import tenant_context
from tenancy.db import tenant_session, tenant_transaction
from tests.faults.conftest import wait_until

ACTOR = Actor("system", "faults")


def statuses(t):
    with tenant_context(t.ref), tenant_session() as session:
        return {job.id: (job.status, job.attempts) for job in session.scalars(select(Job))}


def outbox_rows(t):
    with tenant_context(t.ref), tenant_session() as session:
        return session.scalar(select(func.count()).select_from(OutboxMessage))


def swept(reason):
    return metrics.jobs_swept.labels(reason)._value.get()


def test_jobs_lost_with_the_broker_are_swept_and_complete_once(local_settings, make_tenant):
    local_settings(jobs_stranded_after=0)
    t = make_tenant()
    with tenant_context(t.ref):
        queued = [jobs.create_job(workflow="echo", data={"n": i}, actor=ACTOR).id for i in range(20)]
        with tenant_transaction() as session:  # its worker claimed it, then died with its task
            dead = Job(workflow="echo", input={"dead": True}, status="RUNNING", attempts=1,
                       lease_owner="dead-worker", lease_expires_at=func.now() - timedelta(seconds=1))
            session.add(dead)
    outbox.flush_published()
    assert outbox_rows(t) == 0  # published: only the broker knew about them
    local_settings.server.stop()  # Redis restarted with its data lost (no persistence)
    local_settings.server.start()
    before = swept("queued"), swept("lease_expired")
    with start_worker(celery_app, pool="threads", concurrency=2, perform_ping_check=False, shutdown_timeout=10):
        with tenant_context(t.ref):
            assert sweeper.sweep_stranded_jobs(batch=7) == {"queued": 20, "lease_expired": 1}
        assert wait_until(lambda: {s for s, _ in statuses(t).values()} == {"COMPLETED"}, timeout=60), statuses(t)
        with tenant_context(t.ref):
            assert sweeper.sweep_stranded_jobs() == {"queued": 0, "lease_expired": 0}  # nothing left to sweep
    done = statuses(t)
    assert {done[job_id] for job_id in queued} == {("COMPLETED", 1)} and done[dead.id] == ("COMPLETED", 2)
    with tenant_context(t.ref), tenant_session() as session:
        assert session.scalar(select(func.count()).select_from(JobStep)) == 21  # each job's step once
    assert (swept("queued") - before[0], swept("lease_expired") - before[1]) == (20, 1)


def test_the_sweeper_leaves_alone_what_is_not_stranded_and_other_tenants(local_settings, make_tenant):
    local_settings(jobs_stranded_after=0)
    a, b = make_tenant(), make_tenant()
    with tenant_context(b.ref):
        with tenant_transaction() as session:
            other = Job(workflow="echo", input={}, status="QUEUED", attempts=0)
            session.add(other)
    with tenant_context(a.ref):
        with tenant_transaction() as session:
            live = Job(workflow="echo", input={}, status="RUNNING", attempts=1, lease_owner="live-worker",
                       lease_expires_at=func.now() + timedelta(hours=1))
            finished = [Job(workflow="echo", input={}, status=s, attempts=1) for s in ("COMPLETED", "FAILED")]
            session.add_all([live, *finished])
        outbox.publisher.down_until = float("inf")  # the broker is away: the job's message waits in the outbox
        try:
            waiting = jobs.create_job(workflow="echo", data={}, actor=ACTOR)
        finally:
            outbox.publisher.reset()
        assert sweeper.sweep_stranded_jobs() == {"queued": 0, "lease_expired": 0}
    assert outbox_rows(a) == 1 and outbox_rows(b) == 0  # b's stranded job is b's sweep's, not a's
    assert statuses(a)[waiting.id] == ("QUEUED", 0)
    with tenant_context(b.ref):
        assert sweeper.sweep_stranded_jobs() == {"queued": 1, "lease_expired": 0}


def test_beat_runs_the_sweeper():
    schedule = celery_app.conf.beat_schedule
    assert {entry["task"] for entry in schedule.values()} >= {"zixly.fleet.sweep_stranded_jobs"}
    assert "zixly.fleet.sweep_stranded_jobs" in celery_app.tasks


def test_one_sweep_republishes_each_stranded_job_once_across_its_batches(local_settings, make_tenant, monkeypatch):
    """Batches of one call share the cutoff taken when the call starts: a job swept by the first batch (and still
    waiting in the broker, no worker running, its outbox row already deleted) is not idle again for the second."""
    local_settings(jobs_stranded_after=0)
    publish = outbox.publish
    monkeypatch.setattr(outbox, "publish", lambda messages: (publish(messages), outbox.flush_published())[0])
    t = make_tenant()
    with tenant_context(t.ref):
        with tenant_transaction() as session:
            session.add_all([Job(workflow="echo", input={"n": i}, status="QUEUED", attempts=0) for i in range(10)])
        assert sweeper.sweep_stranded_jobs(batch=3) == {"queued": 10, "lease_expired": 0}
        outbox.flush_published()
        assert sweeper.sweep_stranded_jobs(batch=3) == {"queued": 10, "lease_expired": 0}  # a later call: idle again
