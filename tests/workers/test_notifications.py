"""Notifications end to end: real PostgreSQL, Redis and Celery worker; Novu is a local recording HTTP server.

Each domain event gives exactly one notification to the right people of the right tenant; Novu outages are
retried with backoff under one transactionId while the job that caused them finishes on time; a broker outage
at record time loses nothing; without a Novu key everything is logged as skipped.
"""
import dataclasses
import time
import uuid
from datetime import timedelta

import pytest
from celery.contrib.testing.worker import start_worker
from kombu.exceptions import OperationalError as BrokerDown
from sqlalchemy import select

import core.notify.service
import workers.jobs  # noqa: F401  (registers the tasks)
import workers.notifications  # noqa: F401
from core.connections import store
from core.notify.models import Notification
from core.platform import outbox, signals
from core.platform.models import OutboxMessage
from core.platform.queue import celery_app
from notifications import novu
from tenancy.context import tenant_context
from tenancy.db import tenant_session
from tests.fake_novu import FakeNovu

NOVU_KEY = "nv-test-key"
BASE = 0.2  # backoff base for these tests (production: core.notify.service.RETRY_BASE)
ANN = {"id": "ann", "email": "ann@a.test", "name": "Ann A"}
BOB = {"id": "bob", "email": "bob@b.test", "name": "Bob B"}


@pytest.fixture(scope="module")
def fake_novu():
    server = FakeNovu(hang_seconds=2)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def novu_on(app, settings, fake_novu):
    """Workers and services of this process see a Novu key and the fake server's URL; backoff is short."""
    local = dataclasses.replace(settings, novu_api_key=NOVU_KEY, novu_server_url=fake_novu.url, novu_timeout=0.5,
                                novu_max_attempts=6)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(core.notify.service, "settings", lambda: local)
        patch.setattr(core.notify.service, "RETRY_BASE", BASE)
        yield patch


@pytest.fixture(scope="module")
def worker(novu_on):
    with start_worker(celery_app, pool="threads", concurrency=3, perform_ping_check=False, shutdown_timeout=10):
        yield


def wait_until(check, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {check}")


def log_of(tenant, event):
    with tenant_context(tenant.ref), tenant_session() as session:
        return list(session.scalars(select(Notification).where(Notification.event == event)))


def settled(tenant, event, status="sent"):
    rows = log_of(tenant, event)
    return rows if rows and all(r.status == status for r in rows) else None


def put_settings(client, tenant, event, **setting):
    r = client.put("/v1/notification-settings", json={"events": {event: {"enabled": True, **setting}}},
                   headers=tenant.headers)
    assert r.status_code == 200, r.get_json()


def test_a_failed_job_tells_its_own_tenants_admins_once(worker, client, make_tenant, fake_novu):
    a, b = make_tenant("a"), make_tenant("b")
    put_settings(client, b, "job-failed", users=[BOB])  # B has people to tell; they must hear nothing of A
    job_id = client.post("/v1/jobs", json={"workflow": "echo", "input": {"fail": "permanent"}},
                         headers=a.headers).get_json()["id"]
    [row] = wait_until(lambda: settled(a, "job-failed"))
    job = client.get(f"/v1/jobs/{job_id}", headers=a.headers).get_json()
    assert job["status"] == "FAILED"
    [seen] = [r for r in fake_novu.for_tenant(a.slug) if r.body["name"] == "job-failed"]
    assert (seen.method, seen.path, seen.headers["authorization"]) == ("POST", "/v1/events/trigger",
                                                                       f"ApiKey {NOVU_KEY}")
    assert seen.body == {
        "name": "job-failed",
        "to": [{"type": "Topic", "topicKey": f"zixly_{a.slug}_admins"}],
        "payload": {"job_id": job_id, "workflow": "echo", "error": job["error"], "attempts": 1,
                    "failed_at": seen.body["payload"]["failed_at"]},
        "transactionId": row.transaction_id,
        "context": {"tenant": a.slug},
    }
    assert row.attempts == 1 and row.sent_at is not None
    assert log_of(b, "job-failed") == [] and fake_novu.for_tenant(b.slug) == []
    assert "bob@b.test" not in str([r.body for r in fake_novu.requests])


def test_a_dead_lettered_delivery_tells_the_configured_people_once(worker, client, make_tenant, fake_novu):
    a, b = make_tenant("a"), make_tenant("b")
    put_settings(client, a, "delivery-dead-lettered", admins=False, users=[ANN])
    put_settings(client, b, "delivery-dead-lettered", admins=False, users=[BOB])
    signals.emit(signals.delivery_dead_lettered, tenant=a.ref, provider="hubspot", message_id="m-1",
                 reason="HTTP 400: property does not exist")
    [row] = wait_until(lambda: settled(a, "delivery-dead-lettered"))
    [seen] = fake_novu.for_tenant(a.slug)
    assert seen.body["to"] == [{"subscriberId": f"zixly:{a.slug}:ann", "email": "ann@a.test", "firstName": "Ann",
                                "lastName": "A"}]
    assert seen.body["payload"] == {"provider": "hubspot", "message_id": "m-1",
                                    "reason": "HTTP 400: property does not exist"}
    assert seen.body["transactionId"] == row.transaction_id
    assert log_of(b, "delivery-dead-lettered") == [] and fake_novu.for_tenant(b.slug) == []


def test_a_connection_needing_reauth_is_told_once_however_often_it_is_reported(worker, make_tenant, fake_novu):
    a, b = make_tenant("a"), make_tenant("b")
    with tenant_context(a.ref):
        conn, _token = store.create_connection(provider="xero", account_id=str(uuid.uuid4()), name="Books")
    for _ in range(3):  # e.g. every job that touched the connection found its refresh token revoked
        signals.emit(signals.connection_reauth_required, tenant=a.ref, connection_id=conn.id,
                     reason="refresh token revoked")
    [row] = wait_until(lambda: settled(a, "connection-reauth-required"))
    time.sleep(0.3)  # would a second request still come?
    [seen] = fake_novu.for_tenant(a.slug)
    assert seen.body["payload"] == {"connection_id": str(conn.id), "reason": "refresh token revoked",
                                    "provider": "xero", "connection_name": "Books"}
    assert seen.body["to"] == [{"type": "Topic", "topicKey": f"zixly_{a.slug}_admins"}]
    assert log_of(b, "connection-reauth-required") == [] and fake_novu.for_tenant(b.slug) == []


def test_novu_outage_is_retried_with_backoff_under_one_transaction_id_and_the_job_is_unaffected(
        worker, client, make_tenant, fake_novu):
    a = make_tenant("a")
    fake_novu.scripts[a.slug] = [500, "hang", 503, "hang", "ok"]
    started = time.monotonic()
    job_id = client.post("/v1/jobs", json={"workflow": "echo", "input": {"fail": "permanent"}},
                         headers=a.headers).get_json()["id"]
    wait_until(lambda: client.get(f"/v1/jobs/{job_id}", headers=a.headers).get_json()["status"] == "FAILED", 10)
    job_done = time.monotonic() - started
    [row] = wait_until(lambda: settled(a, "job-failed"), timeout=30)
    delivered = time.monotonic() - started
    seen = fake_novu.for_tenant(a.slug)
    assert [r.answer for r in seen] == [500, "hang", 503, "hang", 201]
    assert {r.body["transactionId"] for r in seen} == {row.transaction_id}  # one transaction, every attempt
    assert len({r.headers["idempotency-key"] for r in seen}) == 5  # a fresh key per attempt (Novu caches errors)
    assert fake_novu.accepted.count(row.transaction_id) == 1 and row.attempts == 5 and row.status == "sent"
    for n in range(1, len(seen)):  # the wait before attempt n+1 is at least BASE * 2^(n-1) less 25 % jitter
        assert seen[n].at - seen[n - 1].at >= 0.75 * BASE * 2 ** (n - 1), (n, seen[n].at - seen[n - 1].at)
    job = client.get(f"/v1/jobs/{job_id}", headers=a.headers).get_json()
    assert job["status"] == "FAILED" and job["attempts"] == 1 and "permanent" in job["error"]
    assert job_done < 3.0 < delivered, (job_done, delivered)  # the job did not wait for Novu


def test_a_broker_outage_at_record_time_loses_nothing(worker, make_tenant, fake_novu):
    a = make_tenant("a")

    def broker_down(message, producer=None):
        raise BrokerDown("Error 111 connecting to redis: Connection refused.")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(outbox, "_send", broker_down)
        patch.setattr(outbox.publisher, "down_until", 0.0)
        signals.emit(signals.delivery_dead_lettered, tenant=a.ref, provider="xero", message_id="m-down",
                     reason="gone")
    outbox.publisher.reset()
    [row] = log_of(a, "delivery-dead-lettered")
    with tenant_context(a.ref), tenant_session() as session:
        waiting = list(session.scalars(select(OutboxMessage).where(OutboxMessage.args == [str(row.id)])))
    assert row.status == "queued" and len(waiting) == 1 and fake_novu.for_tenant(a.slug) == []
    with tenant_context(a.ref):
        assert outbox.relay(min_age=timedelta(0)) >= 1  # what beat's relay-outbox does every 10 s
    wait_until(lambda: settled(a, "delivery-dead-lettered"))
    assert [r.body["transactionId"] for r in fake_novu.for_tenant(a.slug)] == [row.transaction_id]


def test_a_notification_whose_task_was_lost_is_queued_again(worker, make_tenant, fake_novu):
    a = make_tenant("a")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(outbox, "_send", lambda message, producer=None: None)  # the broker took the message, then lost it
        signals.emit(signals.delivery_dead_lettered, tenant=a.ref, provider="xero", message_id="m-lost", reason="x")
    time.sleep(0.3)
    [row] = log_of(a, "delivery-dead-lettered")
    assert row.status == "queued" and fake_novu.for_tenant(a.slug) == []
    with tenant_context(a.ref):
        assert core.notify.service.requeue_stale() == 0  # not stale yet: it might still be waiting out a backoff
        assert core.notify.service.requeue_stale(older_than=timedelta(0)) == 1  # what beat does after STALE_AFTER
    wait_until(lambda: settled(a, "delivery-dead-lettered"))
    assert [r.body["transactionId"] for r in fake_novu.for_tenant(a.slug)] == [row.transaction_id]


def test_a_refusal_is_not_retried(worker, make_tenant, fake_novu):
    a = make_tenant("a")
    fake_novu.scripts[a.slug] = [404]  # e.g. the workflow does not exist in this Novu environment
    signals.emit(signals.delivery_dead_lettered, tenant=a.ref, provider="xero", message_id="m-404", reason="x")
    [row] = wait_until(lambda: settled(a, "delivery-dead-lettered", status="failed"))
    time.sleep(0.5)
    assert len(fake_novu.for_tenant(a.slug)) == 1 and "404" in row.error and row.attempts == 1


def test_tenant_welcome_goes_to_the_admin_email_given_at_creation(worker, client, staff_headers, fake_novu):
    slug = f"welcome-{uuid.uuid4().hex[:8]}"
    r = client.post("/v1/staff/tenants", json={"slug": slug, "name": "Welcome Ltd", "admin_email": "Boss@W.test"},
                    headers=staff_headers)
    assert r.status_code == 201
    [seen] = wait_until(lambda: fake_novu.for_tenant(slug))
    assert seen.body["name"] == "tenant-welcome"
    assert seen.body["to"] == [{"subscriberId": f"zixly:{slug}:boss@w.test", "email": "Boss@W.test"}]
    assert seen.body["payload"] == {"tenant_slug": slug, "tenant_name": "Welcome Ltd", "admin_email": "Boss@W.test"}
    log = client.get("/v1/notifications", headers={"X-API-Key": r.get_json()["api_key"]}).get_json()["items"]
    wait_until(lambda: client.get("/v1/notifications?status=sent", headers={"X-API-Key": r.get_json()["api_key"]})
               .get_json()["items"])
    assert [n["event"] for n in log] == ["tenant-welcome"]


def test_without_a_novu_key_notifications_are_skipped_with_the_request(worker, client, make_tenant, fake_novu,
                                                                      settings):
    a = make_tenant("a")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(core.notify.service, "settings", lambda: settings)  # the suite's settings: no NOVU_API_KEY
        r = client.post("/v1/api-keys", json={"name": "ci-bot", "role": "EDITOR"}, headers=a.headers)
        [row] = wait_until(lambda: settled(a, "api-key-created", status="skipped"))
    key = r.get_json()
    assert "NOVU_API_KEY" in row.error and row.attempts == 0
    assert row.request["payload"]["created_by"].startswith("api_key:")
    assert row.request == novu.trigger_request(
        workflow="api-key-created", tenant=a.slug, to=[novu.topic(a.slug, "admins")],
        payload={"key_id": key["id"], "name": "ci-bot", "role": "EDITOR", "prefix": key["prefix"][len("zx_live_"):],
                 "created_by": row.request["payload"]["created_by"]},
        transaction_id=row.transaction_id)
    assert fake_novu.for_tenant(a.slug) == []
