"""Pausing a connection: its webhooks are still kept but start no job, its scheduled workflows are skipped,
nothing calls the provider through it; resuming restores all of it. Only an ADMIN, only the tenant's own."""
from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from connectors.base import WebhookEvent
from core.connections import api_calls, store
from core.connections.errors import ConnectionNotUsable
from core.inbound import inbox, polling
from core.jobs.models import Job
from core.platform.actors import Actor
from core.workflows import settings as workflow_settings
from tenancy.context import tenant_context
from tenancy.db import tenant_session, tenant_transaction
from tests.api.test_connections import finish, follow_consent, start
from tests.inbound.events import record_events

pytestmark = pytest.mark.usefixtures("free_accounts")
PYTEST = Actor("staff", "pytest")


def jobs_of(t) -> int:
    with tenant_context(t.ref), tenant_session() as session:
        return session.scalar(select(func.count()).select_from(Job))


def an_event(t, conn_id) -> None:
    with tenant_context(t.ref):
        record_events(provider="custom", connection_id=conn_id, headers={}, raw_body=None, events=[WebhookEvent(
            event_id=uuid.uuid4().hex, event_type="ping", account_id=None, resource_id=None, occurred_at=None,
            payload={"n": 1})])


def test_a_paused_connections_events_are_kept_but_start_nothing_until_it_is_resumed(client, make_tenant):
    t = make_tenant("pause")
    created = client.post("/v1/connections", json={"provider": "custom"}, headers=t.headers).get_json()
    with tenant_context(t.ref):
        workflow_settings.put_workflow("echo", {"enabled": True, "event_types": ["*"]}, actor=PYTEST)
    paused = client.post(f"/v1/connections/{created['id']}/pause", headers=t.headers)
    assert paused.status_code == 200 and paused.get_json()["status"] == "paused"
    an_event(t, created["id"])
    with tenant_context(t.ref):
        [event] = inbox.list_events(limit=5)
        assert inbox.replay_event(event.id, actor=PYTEST) == []  # a replay starts nothing while paused either
    assert jobs_of(t) == 0
    again = client.post(f"/v1/connections/{created['id']}/pause", headers=t.headers)
    assert again.status_code == 409 and again.content_type == "application/problem+json"
    resumed = client.post(f"/v1/connections/{created['id']}/resume", headers=t.headers)
    assert resumed.status_code == 200 and resumed.get_json()["status"] == "active"
    an_event(t, created["id"])
    assert jobs_of(t) == 1
    assert client.post(f"/v1/connections/{created['id']}/resume", headers=t.headers).status_code == 409


def test_nothing_calls_the_provider_through_a_paused_connection(client, make_tenant):
    t = make_tenant("pausecall")
    conn = start(client, t, "hubspot")
    conn = finish(client, t, client.get("/v1/oauth/callback?" + follow_consent(conn["authorize_url"])))
    assert client.post(f"/v1/connections/{conn['id']}/pause", headers=t.headers).status_code == 200
    with tenant_context(t.ref), pytest.raises(ConnectionNotUsable, match="paused"):
        api_calls.call(conn["id"], "test")
    tested = client.post(f"/v1/connections/{conn['id']}/test", headers=t.headers)
    assert tested.status_code == 409
    assert client.get("/v1/connections", query_string={"status": "paused"}, headers=t.headers).get_json()[
        "items"][0]["id"] == conn["id"]


def test_a_scheduled_workflow_bound_to_a_paused_connection_is_skipped(client, make_tenant):
    from core.workflows.models import WorkflowSetting

    t = make_tenant("pausesched")
    with tenant_context(t.ref):
        conn, _ = store.create_connection(provider="salesforce", account_id=f"org-{uuid.uuid4().hex[:8]}",
                                          options={"instance_url": "https://x.my.salesforce.com"})
        with tenant_transaction() as session:  # due now, bound to the connection
            session.add(WorkflowSetting(name="revenova-invoice-sync", enabled=True, event_types=[], max_attempts=4,
                                        connections={"source": str(conn.id)}, mappings={}, schedule_seconds=60,
                                        next_run_at=func.now()))
        store.pause_connection(conn.id, actor=PYTEST)
        assert polling.schedule_due() == 0
        with tenant_transaction() as session:
            session.get(WorkflowSetting, "revenova-invoice-sync").next_run_at = func.now()
        store.resume_connection(conn.id, actor=PYTEST)
        assert polling.schedule_due() == 1


def test_only_an_admin_of_the_tenant_pauses(client, make_tenant):
    a, b = make_tenant("pause-a"), make_tenant("pause-b")
    created = client.post("/v1/connections", json={"provider": "custom"}, headers=b.headers).get_json()
    assert client.post(f"/v1/connections/{created['id']}/pause", headers=a.headers).status_code == 404
    viewer = client.post("/v1/api-keys", json={"name": "v", "role": "VIEWER"}, headers=b.headers).get_json()
    r = client.post(f"/v1/connections/{created['id']}/pause", headers={"X-API-Key": viewer["secret"]})
    assert r.status_code == 403
    with tenant_context(b.ref):
        assert store.get_connection(created["id"]).status == "active"
