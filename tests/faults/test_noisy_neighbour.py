"""Noisy neighbour: tenant A has 5,000 jobs queued when tenant B's webhook arrives; B's job starts after at most
one more of A's jobs per worker (tenants take turns: core.platform.fair_queue). The order is asserted, not a time.
"""
import base64
import hashlib
import hmac
import json
import time
import uuid

from celery.contrib.testing.worker import start_worker
from sqlalchemy import func, select

import workers.jobs  # noqa: F401  (registers the tasks)
from core.connections import store
from core.inbound import processor
from core.jobs.creation import add_jobs
from core.jobs.models import Job
from core.platform import fair_queue, outbox
from core.platform.queue import celery_app
from tenancy.context import tenant_context
from tenancy.db import tenant_autocommit, tenant_session
from tests.faults.conftest import wait_until

BACKLOG = 5000
WORKERS = 1


def standard_webhook(secret_raw: bytes, body: bytes) -> dict:
    msg_id, ts = "msg_" + uuid.uuid4().hex, str(int(time.time()))
    sig = base64.b64encode(hmac.new(secret_raw, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()).decode()
    return {"webhook-id": msg_id, "webhook-timestamp": ts, "webhook-signature": f"v1,{sig}",
            "Content-Type": "application/json"}


def queue_backlog(t, n: int) -> None:
    with tenant_context(t.ref):
        with tenant_autocommit() as connection:
            added = add_jobs(connection, workflows=["echo"] * n, data={"backlog": True}, created_by="test:flood")
        assert outbox.publish([message for _, message in added]) == n


def count(t, *where) -> int:
    with tenant_context(t.ref), tenant_session() as session:
        return session.scalar(select(func.count()).select_from(Job).where(*where))


def only_job(t) -> Job:
    with tenant_context(t.ref), tenant_session() as session:
        [job] = session.scalars(select(Job)).all()
        return job


def test_one_tenants_backlog_delays_another_tenants_job_by_at_most_one_job_per_worker(
        local_settings, make_tenant, client):
    local_settings()
    a, b = make_tenant("flood"), make_tenant("quiet")
    raw = b"0123456789abcdef0123456789abcdef"
    with tenant_context(b.ref):
        secret = "whsec_" + base64.b64encode(raw).decode()
        _, token = store.create_connection(provider="custom", webhook_secrets=[secret])
    r = client.put("/v1/workflows/echo", json={"enabled": True, "event_types": ["*"]}, headers=b.headers)
    assert r.status_code == 200, r.get_json()  # echo is opt-in: B's webhook starts one echo job
    queue_backlog(a, BACKLOG)
    with tenant_context(a.ref):
        assert fair_queue.waiting() == BACKLOG
    with start_worker(celery_app, pool="threads", concurrency=WORKERS, perform_ping_check=False, shutdown_timeout=30):
        assert wait_until(lambda: count(a, Job.status == "COMPLETED") >= 5, timeout=60)  # A's flood is being served
        body = json.dumps({"type": "invoice.paid", "timestamp": "2026-11-25T10:00:00Z", "data": {"id": "i1"}}).encode()
        r = client.post(f"/v1/hooks/{token}", data=body, headers=standard_webhook(raw, body))
        assert r.status_code == 200, r.get_json()
        with tenant_context(b.ref):
            assert processor.process_pending() == 1  # what `zixly inbox` does behind the 2xx: B's job admitted
            with tenant_autocommit() as connection:
                admitted_at = connection.scalar(select(func.now()))  # by the clock that stamps started_at
        assert wait_until(lambda: only_job(b).status == "COMPLETED", timeout=120), only_job(b).status
    quiet = only_job(b)
    ahead = count(a, Job.started_at > admitted_at, Job.started_at < quiet.started_at)
    assert ahead <= WORKERS  # the one turn A's head had when B arrived, not A's backlog
    assert count(a, Job.status == "QUEUED") > BACKLOG // 2  # and A's backlog was still there when B ran
