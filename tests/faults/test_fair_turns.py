"""Fair turns (core.platform.fair_queue) against a real Redis: tenants alternate, a job waits once, a turn
delivered again runs the job it took, and one tenant's sub-queue is not another's."""
import uuid

from core.execution import turns
from core.jobs import service as jobs
from core.jobs.models import Job
from core.platform import fair_queue
from core.platform.actors import Actor
from core.platform.logs import request_id_var
from core.platform.runtime import redis_client
from tenancy.context import tenant_context
from tenancy.db import tenant_session

ACTOR = Actor("system", "faults")


def admit(t, *job_ids):
    with tenant_context(t.ref):
        for job_id in job_ids:
            fair_queue.admit(job_id)


def turn_count() -> int:
    return redis_client().llen("zixly")  # the turns waiting in Celery's queue


def test_tenants_take_turns_whatever_their_backlog(local_settings, make_tenant):
    local_settings()
    a, b, c = make_tenant("ra"), make_tenant("rb"), make_tenant("rc")
    admit(a, *[f"a{i}" for i in range(6)])
    admit(b, "b0", "b1")
    admit(c, "c0")
    order = []
    while (turn := fair_queue.take(uuid.uuid4().hex)) is not None:
        order.append(turn.job_id)
    assert order == ["c0", "b0", "a0", "b1", "a1", "a2", "a3", "a4", "a5"]  # a tenant joining is served next
    assert turn_count() == 9  # one turn per admission


def test_a_job_waits_once_and_every_admission_sends_a_turn(local_settings, make_tenant):
    local_settings()
    a = make_tenant("once")
    admit(a, "j1", "j1", "j2")  # the relay admitting again what a request already admitted
    with tenant_context(a.ref):
        assert fair_queue.waiting() == 2
    assert turn_count() == 3  # turns >= entries: the spare turn finds nothing and costs nothing
    taken = [fair_queue.take(uuid.uuid4().hex) for _ in range(3)]
    assert [t and t.job_id for t in taken] == ["j1", "j2", None]


def test_a_turn_delivered_again_takes_the_same_job_until_released(local_settings, make_tenant):
    local_settings()
    a = make_tenant("again")
    admit(a, "first", "second")
    turn_id = uuid.uuid4().hex
    assert fair_queue.take(turn_id).job_id == "first"
    assert fair_queue.take(turn_id).job_id == "first"  # the worker died, or the task was retried
    fair_queue.release(turn_id)
    assert fair_queue.take(turn_id).job_id == "second"


def test_a_turn_runs_its_job_in_its_own_tenant_and_sub_queues_are_per_tenant(local_settings, make_tenant):
    local_settings()
    a, b = make_tenant("own"), make_tenant("other")
    with tenant_context(a.ref):
        job = jobs.create_job(workflow="echo", data={"n": 1}, actor=ACTOR)  # admitted by the outbox publish
        assert fair_queue.waiting() == 1
    with tenant_context(b.ref):
        assert fair_queue.waiting() == 0
    assert turns.run_next_job(uuid.uuid4().hex) == "COMPLETED"
    with tenant_context(a.ref), tenant_session() as session:
        assert session.get(Job, job.id).status == "COMPLETED"
    with tenant_context(b.ref), tenant_session() as session:
        assert session.get(Job, job.id) is None
    assert turns.run_next_job(uuid.uuid4().hex) == turns.IDLE


def test_a_suspended_tenants_turn_is_refused_and_its_job_kept(local_settings, make_tenant, client, staff_headers):
    local_settings()
    t = make_tenant("paused")
    with tenant_context(t.ref):
        job = jobs.create_job(workflow="echo", data={}, actor=ACTOR)
    assert client.patch(f"/v1/staff/tenants/{t.slug}", json={"status": "suspended"},
                        headers=staff_headers).status_code == 200
    assert turns.run_next_job(uuid.uuid4().hex) == turns.REFUSED
    with tenant_context(t.ref), tenant_session() as session:
        assert session.get(Job, job.id).status == "QUEUED"  # swept once the tenant is active again


def test_a_turn_runs_its_job_under_the_request_id_that_admitted_the_job(local_settings, make_tenant):
    """Turns are interchangeable (one request's turn may run another request's job): the job's log lines carry
    the request id of the job's own request."""
    local_settings()
    a = make_tenant("rid")
    token = request_id_var.set("req-of-the-job")
    try:
        admit(a, "j1")
    finally:
        request_id_var.reset(token)
    admit(a, "j2")  # admitted outside any request (the sweeper, a schedule)
    assert [fair_queue.take(uuid.uuid4().hex).request_id for _ in range(2)] == ["req-of-the-job", None]
