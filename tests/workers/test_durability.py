"""Nothing accepted is lost: Redis down while webhooks arrive, and a worker killed with SIGKILL mid-job.

These run a real `zixly worker` subprocess against a Redis server of their own, so stopping it does not
disturb the rest of the suite.
"""
import base64
import dataclasses
import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core import bootstrap
from core.connections import store
from core.jobs.models import Job, JobStep
from core.platform import outbox
from core.platform.models import OutboxMessage
from devstack import redis_server
from tenancy.context import tenant_context
from tenancy.db import tenant_session

ROOT = Path(__file__).resolve().parents[2]
KEY = "durability-xero-key"


@pytest.fixture()
def own_redis(tmp_path, settings):
    server = redis_server(tmp_path / "redis", persistent=True).start()
    local = dataclasses.replace(settings, redis_url=f"redis://127.0.0.1:{server.port}/0",
                                app_webhook_secrets={"xero": (KEY,)})
    bootstrap.init(local)
    yield server, local
    server.stop()
    bootstrap.init(settings)


def start_worker(local, tmp_path, visibility=3600, concurrency=2, lease=60) -> subprocess.Popen:
    env = dict(os.environ, DATABASE_URL=local.database_url, REDIS_URL=local.redis_url,
               ZIXLY_BROKER_VISIBILITY_TIMEOUT=str(visibility), ZIXLY_JOB_LEASE_SECONDS=str(lease),
               ZIXLY_HOME=str(tmp_path))
    log = open(tmp_path / f"worker-{time.monotonic_ns()}.log", "wb")
    return subprocess.Popen([str(Path(sys.executable).parent / "zixly"), "worker", "-c", str(concurrency)],
                            env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc, sig=signal.SIGTERM):
    try:
        os.killpg(proc.pid, sig)
        proc.wait(timeout=30)
    except ProcessLookupError:
        pass


def job_counts(t):
    with tenant_context(t.ref), tenant_session() as s:
        rows = s.execute(select(Job.status, func.count(), func.max(Job.attempts)).group_by(Job.status)).all()
    return {status: (n, attempts) for status, n, attempts in rows}


def wait_until(check, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.25)
    return False


def test_redis_down_then_back_loses_nothing(own_redis, app, make_tenant, tmp_path):
    server, local = own_redis
    from api.app import create_app

    client = create_app(local).test_client()
    t = make_tenant()
    org = str(uuid.uuid4())
    with tenant_context(t.ref):
        store.create_connection(provider="xero", account_id=org)
    assert client.put("/v1/workflows/echo", json={"enabled": True, "event_types": ["*"]},  # echo is opt-in: one
                      headers=t.headers).status_code == 200  # job per event
    server.stop()  # Redis is down while the webhooks arrive
    for i in range(100):
        body = json.dumps({"events": [{
            "resourceUrl": "https://api.xero.com/x", "resourceId": f"inv-{i}", "eventDateUtc": "2026-11-25T10:00:00",
            "eventType": "UPDATE", "eventCategory": "INVOICE", "tenantId": org, "tenantType": "ORGANISATION"}],
            "firstEventSequence": 1, "lastEventSequence": 1, "entropy": "e"}).encode()
        sig = base64.b64encode(hmac.new(KEY.encode(), body, hashlib.sha256).digest()).decode()
        assert client.post("/v1/hooks/apps/xero", data=body, headers={"x-xero-signature": sig}).status_code == 200
    assert job_counts(t) == {"QUEUED": (100, 0)}
    with tenant_context(t.ref), tenant_session() as s:
        assert s.scalar(select(func.count()).select_from(OutboxMessage)) == 100
    server.start()  # same port, same data dir
    worker = start_worker(local, tmp_path)
    try:
        from workers.jobs import relay_all_outboxes

        outbox.publisher.reset()
        relay_all_outboxes(min_age=0)  # what beat runs every 10 s (there, for rows older than 30 s)
        assert wait_until(lambda: job_counts(t).get("COMPLETED", (0, 0))[0] == 100), job_counts(t)
        assert job_counts(t) == {"COMPLETED": (100, 1)}  # every job once, on its first attempt
    finally:
        stop(worker)


def test_worker_killed_mid_job_is_redelivered_and_completes_once(own_redis, make_tenant, tmp_path):
    _, local = own_redis
    t = make_tenant()
    from core.jobs import service as jobs
    from core.platform.actors import Actor

    first = start_worker(local, tmp_path, visibility=3, concurrency=1, lease=2)  # the dead worker's lease lapses
    with tenant_context(t.ref):
        job = jobs.create_job(workflow="echo", data={"sleep": 4}, actor=Actor("system", "test"))
    try:
        assert wait_until(lambda: "RUNNING" in job_counts(t), timeout=60), job_counts(t)
    finally:
        stop(first, signal.SIGKILL)
    second = start_worker(local, tmp_path, visibility=3, concurrency=1, lease=2)
    try:
        assert wait_until(lambda: "COMPLETED" in job_counts(t), timeout=90), job_counts(t)
    finally:
        stop(second)
    with tenant_context(t.ref), tenant_session() as s:
        done = s.get(Job, job.id)
        steps = s.scalars(select(JobStep).where(JobStep.job_id == job.id, JobStep.status == "done")).all()
    assert done.status == "COMPLETED" and done.attempts == 2  # claimed again after the kill
    assert len(steps) == 1  # the step's effect was applied once
