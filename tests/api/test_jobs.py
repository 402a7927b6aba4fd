"""Jobs API and lifecycle, with a real Celery worker on the real Redis broker."""
import time

import pytest
from celery.contrib.testing.worker import start_worker

import workers.jobs  # noqa: F401  (registers the tasks)
from core.jobs import service as jobs
from core.jobs.models import Job
from core.platform.queue import celery_app


@pytest.fixture(scope="module")
def worker(app):
    with start_worker(celery_app, pool="threads", concurrency=2, perform_ping_check=False, shutdown_timeout=10):
        yield


def wait_for(client, headers, job_id, statuses=("COMPLETED", "FAILED", "CANCELLED"), timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(f"/v1/jobs/{job_id}", headers=headers).get_json()
        if body["status"] in statuses:
            return body
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} stuck at {body['status']}")


def test_job_runs_in_its_tenant(worker, client, make_tenant):
    t = make_tenant()
    r = client.post("/v1/jobs", json={"workflow": "echo", "input": {"hello": "world"}}, headers=t.headers)
    assert r.status_code == 202 and r.get_json()["status"] == "QUEUED"
    assert r.get_json()["links"]["self"].endswith(r.get_json()["id"])
    done = wait_for(client, t.headers, r.get_json()["id"])
    assert done["status"] == "COMPLETED" and done["result"] == {"echo": {"hello": "world"}}
    assert done["attempts"] == 1 and [s["name"] for s in done["steps"]] == ["echo"]


def test_retryable_failure_backs_off_then_succeeds(worker, client, make_tenant, monkeypatch):
    monkeypatch.setattr(jobs, "BACKOFF_BASE", 0.05)
    import core.execution.service

    monkeypatch.setattr(core.execution.service, "BACKOFF_BASE", 0.05)
    t = make_tenant()
    r = client.post("/v1/jobs", json={"workflow": "echo", "input": {"fail": "retryable", "fail_attempts": 2}},
                    headers=t.headers)
    done = wait_for(client, t.headers, r.get_json()["id"])
    assert done["status"] == "COMPLETED" and done["attempts"] == 3
    assert [s["status"] for s in done["steps"]] == ["failed", "failed", "done"]


def test_permanent_failure_fails_at_once_and_retry_requeues(worker, client, make_tenant):
    t = make_tenant()
    job_id = client.post("/v1/jobs", json={"workflow": "echo", "input": {"fail": "permanent"}},
                         headers=t.headers).get_json()["id"]
    done = wait_for(client, t.headers, job_id)
    assert done["status"] == "FAILED" and done["attempts"] == 1 and "permanent" in done["error"]
    r = client.post(f"/v1/jobs/{job_id}/retry", headers=t.headers)
    assert r.status_code == 202 and r.get_json()["status"] == "QUEUED"
    assert wait_for(client, t.headers, job_id)["status"] == "FAILED"


def test_cancel_keeps_the_job_cancelled_and_illegal_transitions_are_409(worker, client, make_tenant):
    t = make_tenant()
    job_id = client.post("/v1/jobs", json={"workflow": "echo", "input": {"sleep": 1}},
                         headers=t.headers).get_json()["id"]
    r = client.post(f"/v1/jobs/{job_id}/cancel", headers=t.headers)  # QUEUED or RUNNING: both may be cancelled
    assert r.status_code == 200 and r.get_json()["status"] == "CANCELLED"
    time.sleep(1.5)  # a running echo finishes its sleep; the cancellation must stand
    assert client.get(f"/v1/jobs/{job_id}", headers=t.headers).get_json()["status"] == "CANCELLED"
    r = client.post(f"/v1/jobs/{job_id}/cancel", headers=t.headers)
    assert r.status_code == 409 and r.content_type == "application/problem+json"


def test_transition_table():
    job = Job(status="COMPLETED")
    for target in jobs.STATUSES:
        with pytest.raises(jobs.IllegalTransition):
            jobs.transition(job, target)
    job = Job(status="QUEUED")
    with pytest.raises(jobs.IllegalTransition):
        jobs.transition(job, "COMPLETED")
    jobs.transition(job, "RUNNING")
    assert job.started_at is not None
    jobs.transition(job, "COMPLETED")
    assert job.finished_at is not None


def test_completed_job_is_not_run_twice(worker, client, make_tenant):
    t = make_tenant()
    job_id = client.post("/v1/jobs", json={"workflow": "echo", "input": {}}, headers=t.headers).get_json()["id"]
    wait_for(client, t.headers, job_id)
    from core.execution.service import execute_job
    from tenancy.context import tenant_context

    with tenant_context(t.ref):  # a second delivery of the task, run in place
        assert execute_job(job_id) == "COMPLETED"
    body = client.get(f"/v1/jobs/{job_id}", headers=t.headers).get_json()
    assert body["attempts"] == 1 and len(body["steps"]) == 1


def test_idempotency_key_on_jobs(client, make_tenant):
    t = make_tenant()
    headers = {**t.headers, "Idempotency-Key": "job-1"}
    a = client.post("/v1/jobs", json={"workflow": "echo", "input": {"n": 1}}, headers=headers)
    b = client.post("/v1/jobs", json={"workflow": "echo", "input": {"n": 1}}, headers=headers)
    assert a.status_code == b.status_code == 202 and a.get_json()["id"] == b.get_json()["id"]
    c = client.post("/v1/jobs", json={"workflow": "echo", "input": {"n": 2}}, headers=headers)
    assert c.status_code == 422
    assert len(client.get("/v1/jobs", headers=t.headers).get_json()["items"]) == 1


def test_bad_job_input_writes_nothing(client, make_tenant):
    t = make_tenant()
    viewer = client.post("/v1/api-keys", json={"name": "v", "role": "VIEWER"}, headers=t.headers).get_json()
    for body, status in (({"workflow": "nope"}, 422), ({"workflow": "echo", "input": [1]}, 422),
                         ({"input": {}}, 422), ({"workflow": "echo", "extra": 1}, 422)):
        r = client.post("/v1/jobs", json=body, headers=t.headers)
        assert r.status_code == status and r.content_type == "application/problem+json", body
    r = client.post("/v1/jobs", json={"workflow": "echo"}, headers={"X-API-Key": viewer["secret"]})
    assert r.status_code == 403
    for path in ("/v1/jobs/not-a-uuid", "/v1/jobs/00000000-0000-0000-0000-000000000000"):
        assert client.get(path, headers=t.headers).status_code == 404
    assert client.get("/v1/jobs?status=DONE", headers=t.headers).status_code == 422
    assert client.get("/v1/jobs?created_after=yesterday", headers=t.headers).status_code == 422
    assert client.get("/v1/jobs", headers=t.headers).get_json()["items"] == []


def test_jobs_of_another_tenant_are_404(client, make_tenant):
    a, b = make_tenant("a"), make_tenant("b")
    job_id = client.post("/v1/jobs", json={"workflow": "echo", "input": {}}, headers=b.headers).get_json()["id"]
    for method, path in (("get", f"/v1/jobs/{job_id}"), ("post", f"/v1/jobs/{job_id}/cancel"),
                         ("post", f"/v1/jobs/{job_id}/retry")):
        r = getattr(client, method)(path, headers=a.headers)
        assert r.status_code == 404, (method, path)
    assert client.get("/v1/jobs", headers=a.headers).get_json()["items"] == []
    assert client.get(f"/v1/jobs/{job_id}", headers=b.headers).get_json()["status"] in ("QUEUED", "RUNNING",
                                                                                         "COMPLETED")


def test_list_filters_and_pagination(client, make_tenant):
    t = make_tenant()
    ids = [client.post("/v1/jobs", json={"workflow": "echo", "input": {"i": i, "sleep": 2 if i == 0 else 0}},
                       headers=t.headers).get_json()["id"] for i in range(5)]
    client.post(f"/v1/jobs/{ids[0]}/cancel", headers=t.headers)
    seen, cursor = [], None
    while True:
        q = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        body = client.get("/v1/jobs", query_string=q, headers=t.headers).get_json()
        seen += [j["id"] for j in body["items"]]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(ids)
    cancelled = client.get("/v1/jobs?status=CANCELLED", headers=t.headers).get_json()["items"]
    assert [j["id"] for j in cancelled] == [ids[0]]


def test_forged_cursors_are_400_not_500(client, make_tenant):
    import base64
    import json as _json

    t = make_tenant()
    for value in (["not-a-date", "x"], [1, 2], ["2026-01-01T00:00:00+00:00"], {"a": 1}, "str"):
        cursor = base64.urlsafe_b64encode(_json.dumps(value).encode()).decode()
        for path in ("/v1/jobs", "/v1/events", "/v1/api-keys", "/v1/audit-log"):
            r = client.get(path, query_string={"cursor": cursor}, headers=t.headers)
            assert r.status_code == 400 and r.content_type == "application/problem+json", (path, value)


def test_a_job_claimed_again_after_its_worker_died_resumes_after_its_done_steps(make_tenant):
    """The claim is one statement: it takes a RUNNING job again (one more attempt, the first start kept) and hands
    the run the steps earlier attempts finished; the completion marks the job's event processed."""
    from datetime import UTC, datetime

    from core.execution.service import execute_job
    from core.inbound.models import InboundEvent
    from core.jobs.models import JobStep
    from tenancy.context import tenant_context
    from tenancy.db import tenant_session, tenant_transaction

    t = make_tenant()
    first_start = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    with tenant_context(t.ref):
        with tenant_transaction() as session:  # an attempt that finished its step, then lost its worker
            event = InboundEvent(provider="xero", provider_event_id="e-1", event_type="x", payload={})
            session.add(event)
            session.flush()
            job = Job(workflow="echo", input={"n": 2}, status="RUNNING", attempts=1, started_at=first_start,
                      event_id=event.id)
            session.add(job)
            session.flush()
            session.add(JobStep(job_id=job.id, attempt=1, name="echo", status="done",
                                detail={"output": {"echo": "from the first attempt"}}))
            session.add(JobStep(job_id=job.id, attempt=1, name="other", status="failed", detail={"error": "x"}))
        assert execute_job(job.id) == "COMPLETED"
        assert execute_job(job.id) == "COMPLETED"  # delivered once more: not claimed, not run
        with tenant_session() as session:
            row, event = session.get(Job, job.id), session.get(InboundEvent, event.id)
            steps = session.query(JobStep).filter_by(job_id=job.id).count()
    assert (row.status, row.attempts, row.started_at) == ("COMPLETED", 2, first_start)
    assert row.result == {"echo": "from the first attempt"} and row.finished_at is not None
    assert event.status == "processed" and steps == 2  # the done step was not run (nor recorded) again


def test_a_finished_or_cancelled_job_is_not_claimed(make_tenant):
    from core.execution.service import execute_job
    from tenancy.context import tenant_context
    from tenancy.db import tenant_session, tenant_transaction

    t = make_tenant()
    with tenant_context(t.ref):
        with tenant_transaction() as session:
            done = [Job(workflow="echo", input={}, status=s, attempts=1) for s in ("CANCELLED", "FAILED", "COMPLETED")]
            session.add_all(done)
        for job in done:
            assert execute_job(job.id) == job.status
        assert execute_job("00000000-0000-0000-0000-000000000000") == "MISSING"
        with tenant_session() as session:
            assert [session.get(Job, j.id).attempts for j in done] == [1, 1, 1]


def test_a_running_job_is_not_retried_by_hand(client, make_tenant):
    import uuid
    from datetime import UTC, datetime, timedelta

    from tenancy.context import tenant_context
    from tenancy.db import tenant_transaction

    t = make_tenant()
    job_id = uuid.uuid4()
    with tenant_context(t.ref), tenant_transaction() as s:  # as a live worker's claim leaves it (lease held)
        s.add(Job(id=job_id, workflow="echo", input={}, status="RUNNING", attempts=1, max_attempts=4,
                  lease_owner="another-worker", lease_expires_at=datetime.now(UTC) + timedelta(hours=1)))
    r = client.post(f"/v1/jobs/{job_id}/retry", headers=t.headers)
    assert r.status_code == 409 and r.content_type == "application/problem+json"
    job = client.get(f"/v1/jobs/{job_id}", headers=t.headers).get_json()
    assert job["status"] == "RUNNING" and job["attempts"] == 1  # nothing changed
