"""A job delivered twice runs once: a claim holds a lease, a second delivery while it is live is put off, a dead
worker's job is taken over once its lease lapsed, and only the lease holder records steps and the outcome."""
import threading
from datetime import timedelta

from sqlalchemy import func, select, update

from core.execution.service import execute_job
from core.jobs import service as jobs
from core.jobs.models import Job, JobStep
from core.platform.actors import Actor
from tenancy.context import tenant_context
from tenancy.db import tenant_autocommit, tenant_session, tenant_transaction
from tests.faults.conftest import wait_until

ACTOR = Actor("system", "faults")


def read(t, job_id):
    with tenant_context(t.ref), tenant_session() as session:
        job = session.get(Job, job_id)
        steps = [(s.attempt, s.name, s.status) for s in
                 session.scalars(select(JobStep).where(JobStep.job_id == job_id).order_by(JobStep.id))]
    return job, steps


class BlockingStep:
    """A workflow whose one step waits until the test lets it go, counting its runs."""

    def __init__(self):
        self.entered, self.release, self.runs = threading.Event(), threading.Event(), []

    def run(self, ctx, data):
        def body():
            self.runs.append(ctx.attempt)
            self.entered.set()
            assert self.release.wait(30), "the test never released the step"
            return {"ran": True}

        return ctx.step("only", body)


def in_thread(t, fn, *args):
    out = {}

    def target():
        with tenant_context(t.ref):
            out["value"] = fn(*args)

    thread = threading.Thread(target=target)
    thread.start()
    return thread, out


def test_a_job_delivered_twice_at_once_runs_its_step_once(local_settings, make_tenant, probe_workflow):
    local_settings()
    probe = BlockingStep()
    workflow = probe_workflow(probe.run)
    t = make_tenant()
    with tenant_context(t.ref):
        job = jobs.create_job(workflow=workflow, data={}, actor=ACTOR)
    first, out = in_thread(t, execute_job, job.id)
    assert probe.entered.wait(30)
    with tenant_context(t.ref):
        second = execute_job(job.id)  # the second delivery, while the first runs
    probe.release.set()
    first.join(30)
    done, steps = read(t, job.id)
    assert (second, out["value"]) == ("RUNNING", "COMPLETED")
    assert probe.runs == [1] and done.attempts == 1 and steps == [(1, "only", "done")]
    assert done.lease_owner is None and done.lease_expires_at is None  # released by the completion


def test_a_heartbeat_keeps_the_lease_of_a_step_longer_than_it(local_settings, make_tenant, probe_workflow):
    # a short lease the step outlives, but not so short that a loaded machine's scheduling lapses it before the
    # first heartbeat (1 s did, once, in a full run beside other suites)
    local_settings(job_lease_seconds=3)
    probe = BlockingStep()
    workflow = probe_workflow(probe.run)
    t = make_tenant()
    with tenant_context(t.ref):
        job = jobs.create_job(workflow=workflow, data={}, actor=ACTOR)
    first, out = in_thread(t, execute_job, job.id)
    assert probe.entered.wait(30)
    claimed, _ = read(t, job.id)

    def first_lease_lapsed():  # by the database's clock, which every claim compares with
        with tenant_context(t.ref), tenant_autocommit() as connection:
            return connection.execute(select(func.now() > claimed.lease_expires_at + timedelta(seconds=1))).scalar()

    assert wait_until(first_lease_lapsed, timeout=30)
    with tenant_context(t.ref):
        assert execute_job(job.id) == "RUNNING"  # renewed by the heartbeat: still held
    probe.release.set()
    first.join(30)
    done, steps = read(t, job.id)
    assert out["value"] == "COMPLETED" and probe.runs == [1] and done.attempts == 1 and len(steps) == 1


def test_a_running_job_whose_lease_lapsed_is_claimed_again_and_completes_once(local_settings, make_tenant,
                                                                              probe_workflow):
    local_settings()
    runs = []

    def run(ctx, data):
        first = ctx.step("first", lambda: runs.append("first") or "one")
        return {"second": ctx.step("second", lambda: runs.append("second") or first + "+two")}

    workflow = probe_workflow(run)
    t = make_tenant()
    with tenant_context(t.ref):
        with tenant_transaction() as session:  # a worker claimed it, finished one step, and died
            dead = Job(workflow=workflow, input={}, status="RUNNING", attempts=1, lease_owner="dead-worker",
                       lease_expires_at=func.now() - timedelta(seconds=1))
            alive = Job(workflow=workflow, input={}, status="RUNNING", attempts=1, lease_owner="live-worker",
                        lease_expires_at=func.now() + timedelta(hours=1))
            session.add_all([dead, alive])
            session.flush()
            session.add(JobStep(job_id=dead.id, attempt=1, name="first", status="done", detail={"output": "one"}))
        assert execute_job(alive.id) == "RUNNING"  # its worker is alive: not claimed, nothing run
        assert execute_job(dead.id) == "COMPLETED"
        assert execute_job(dead.id) == "COMPLETED"  # delivered once more: not run
    done, steps = read(t, dead.id)
    assert runs == ["second"] and done.attempts == 2 and done.result == {"second": "one+two"}
    assert steps == [(1, "first", "done"), (2, "second", "done")]
    held, _ = read(t, alive.id)
    assert (held.status, held.attempts, held.lease_owner) == ("RUNNING", 1, "live-worker")


def test_a_run_that_lost_its_lease_records_neither_steps_nor_the_outcome(local_settings, make_tenant, probe_workflow):
    local_settings()
    probe = BlockingStep()
    workflow = probe_workflow(probe.run)
    t = make_tenant()
    with tenant_context(t.ref):
        job = jobs.create_job(workflow=workflow, data={}, actor=ACTOR)
    first, out = in_thread(t, execute_job, job.id)
    assert probe.entered.wait(30)
    with tenant_context(t.ref), tenant_transaction() as session:  # its lease lapsed and another claim took it
        session.execute(update(Job).where(Job.id == job.id).values(lease_owner="another-worker"))
    probe.release.set()
    first.join(30)
    held, steps = read(t, job.id)
    assert out["value"] == "RUNNING" and steps == []
    assert (held.status, held.lease_owner, held.result) == ("RUNNING", "another-worker", None)


def test_cancel_then_retry_while_running_waits_for_the_running_attempt(local_settings, make_tenant, probe_workflow):
    local_settings()
    probe = BlockingStep()
    workflow = probe_workflow(probe.run)
    t = make_tenant()
    with tenant_context(t.ref):
        job = jobs.create_job(workflow=workflow, data={}, actor=ACTOR)
    first, out = in_thread(t, execute_job, job.id)
    assert probe.entered.wait(30)
    with tenant_context(t.ref):
        jobs.cancel_job(job.id)
        jobs.retry_job(job.id)
        assert execute_job(job.id) == "QUEUED"  # the retry's delivery: the first attempt still holds the job
    probe.release.set()
    first.join(30)
    queued, steps = read(t, job.id)
    assert probe.runs == [1] and out["value"] == "QUEUED" and steps == []  # the cancelled run recorded nothing
    assert queued.status == "QUEUED" and queued.attempts == 0
