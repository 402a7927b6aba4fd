"""Celery carries the tenant: header at publish, restored around the task, refused without a tenant."""
from datetime import UTC, datetime, timedelta

import pytest
from celery.contrib.testing.worker import start_worker
from celery.result import AsyncResult
from celery.signals import before_task_publish
from sqlalchemy import select

import workers.maintenance as tasks
from core.platform.models import TenantIdempotencyRecord
from core.platform.queue import celery_app
from tenancy.celery import HEADER, TenantUnavailable
from tenancy.context import NoTenantContext, tenant_context
from tenancy.db import tenant_session, tenant_transaction


@pytest.fixture(scope="module")
def worker(app):
    with start_worker(celery_app, pool="solo", concurrency=1, perform_ping_check=False, shutdown_timeout=10):
        yield


def test_publishing_a_tenant_task_without_tenant_is_refused(app):
    with pytest.raises(NoTenantContext):
        tasks.audit_summary.delay()
    with pytest.raises(NoTenantContext):
        celery_app.send_task("zixly.tenant.audit_summary")


def test_header_is_added_for_tenant_tasks_and_never_for_fleet_tasks(worker, make_tenant):
    a = make_tenant()
    seen = {}

    def capture(sender=None, headers=None, **kwargs):
        seen[sender] = (headers or {}).get(HEADER)

    before_task_publish.connect(capture)
    try:
        with tenant_context(a.ref):
            tasks.audit_summary.delay().get(timeout=20)
            tasks.fan_out_prune.delay().get(timeout=20)
    finally:
        before_task_publish.disconnect(capture)
    assert seen["zixly.tenant.audit_summary"] == a.slug
    assert seen["zixly.fleet.prune_idempotency_records"] is None


def test_tasks_for_b_then_a_on_one_worker_see_their_own_tenant(worker, make_tenant, client):
    a, b = make_tenant("a"), make_tenant("b")
    client.post("/v1/api-keys", json={"name": "extra", "role": "VIEWER"}, headers=b.headers)
    with tenant_context(b.ref):
        rb = tasks.audit_summary.delay()
    with tenant_context(a.ref):
        ra = tasks.audit_summary.delay()
    got_b, got_a = rb.get(timeout=20), ra.get(timeout=20)
    assert got_b["tenant"] == b.slug and got_a["tenant"] == a.slug
    assert got_a["audit_entries"] == 1 and got_b["audit_entries"] == 2
    assert got_a["targets"] == [a.slug]


def test_suspended_tenant_task_refuses_to_run(worker, make_tenant, client, staff_headers):
    t = make_tenant()
    client.patch(f"/v1/staff/tenants/{t.slug}", json={"status": "suspended"}, headers=staff_headers)
    with tenant_context(t.ref):  # the publisher's view is stale; the worker checks the catalog
        result = tasks.audit_summary.delay()
    with pytest.raises(TenantUnavailable):
        result.get(timeout=20, propagate=True)


def test_task_published_from_a_task_keeps_each_tenant(worker, make_tenant):
    tenants = [make_tenant("fan") for _ in range(3)]
    for i, t in enumerate(tenants):  # i+1 expired records and one fresh record per tenant
        with tenant_context(t.ref), tenant_transaction() as s:
            for n in range(i + 1):
                s.add(TenantIdempotencyRecord(key=f"old-{n}", principal="p", request_hash="h",
                                              created_at=datetime.now(UTC) - timedelta(days=3)))
            s.add(TenantIdempotencyRecord(key="fresh", principal="p", request_hash="h"))
    published = tasks.fan_out_prune.delay().get(timeout=30)
    for i, t in enumerate(tenants):
        assert AsyncResult(published[t.slug], app=celery_app).get(timeout=30) == i + 1
        with tenant_context(t.ref), tenant_session() as s:
            assert s.scalars(select(TenantIdempotencyRecord.key)).all() == ["fresh"]


def test_publishing_keeps_one_redis_client_per_pool(app):
    """kombu would build a new redis client per message; ours keeps one per pool, and a new pool gets a new one."""
    from core.platform.queue import _Channel

    with celery_app.connection_for_write() as connection:
        channel = connection.default_channel
        assert isinstance(channel, _Channel)
        first = channel._create_client()
        assert channel._create_client() is first and first.ping()
        assert channel._create_client(asynchronous=True) is not first  # the consumer's own client is left alone
        channel._pool = None  # as after a reconnect
        assert channel._create_client() is not first and channel._create_client().ping()
