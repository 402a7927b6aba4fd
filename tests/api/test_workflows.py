"""Workflow settings, trigger matching, polling with a cursor, retries that honour Retry-After, the job's
execution record (related records, artifacts) — against the provider simulators and the moto server."""
import base64
import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import requests
from sqlalchemy import func, select

from core.connections import store
from core.execution.service import execute_job
from core.inbound import polling, processor
from core.inbound.models import InboundEvent, PollCursor
from core.jobs import artifacts
from core.jobs.models import Job
from core.workflows.models import WorkflowSetting
from tenancy.context import tenant_context
from tenancy.db import tenant_session, tenant_transaction
from tests.api.test_connections import connect

pytestmark = pytest.mark.usefixtures("free_accounts")

WORKFLOWS = {"echo", "xero-invoice-paid-to-hubspot", "shopify-order-to-xero-invoice", "hubspot-deal-won-to-asana",
             "revenova-invoice-sync"}


def put(client, t, name, body):
    return client.put(f"/v1/workflows/{name}", json=body, headers=t.headers)


def custom_connection(t, provider, secrets=("hook-secret-123456",), account_id=None):
    with tenant_context(t.ref):
        conn, token = store.create_connection(provider=provider, webhook_secrets=list(secrets),
                                                    account_id=account_id)
    return str(conn.id), token


def test_list_and_read_workflows(client, make_tenant):
    t = make_tenant("wf")
    items = client.get("/v1/workflows", headers=t.headers).get_json()["items"]
    assert {w["name"] for w in items} == WORKFLOWS
    paid = client.get("/v1/workflows/xero-invoice-paid-to-hubspot", headers=t.headers).get_json()
    assert paid["roles"] == {"source": "xero", "target": "hubspot"} and paid["enabled"] is False
    assert paid["trigger"]["provider"] == "xero" and paid["mappings"]["deal_stage"] == "closedwon"
    sync = client.get("/v1/workflows/revenova-invoice-sync", headers=t.headers).get_json()
    assert sync["scheduled"] is True and sync["trigger"] is None
    assert client.get("/v1/workflows/nope", headers=t.headers).status_code == 404


def test_settings_are_validated_and_bad_input_changes_nothing(client, make_tenant):
    t = make_tenant("wfbad")
    xero, _ = custom_connection(t, "xero")
    hubspot, _ = custom_connection(t, "hubspot")
    before = client.get("/v1/workflows/xero-invoice-paid-to-hubspot", headers=t.headers).get_json()
    bad = [
        {"enabled": True},  # roles not bound
        {"connections": {"source": hubspot, "target": hubspot}},  # wrong provider for source
        {"connections": {"source": str(uuid.uuid4()), "target": hubspot}},  # unknown connection
        {"connections": {"origin": xero}},  # no such role
        {"connections": {"source": "not-a-uuid"}},
        {"mappings": {"deal_stage": ""}},
        {"mappings": {"colour": "red"}},
        {"schedule_seconds": 600},  # an event workflow has no schedule
        {"event_types": ["X"]},  # only echo chooses its event types
        {"enabled": "yes"},
        {"max_attempts": 0},
    ]
    for body in bad:
        r = put(client, t, "xero-invoice-paid-to-hubspot", body)
        assert r.status_code == 422 and r.content_type == "application/problem+json", (body, r.get_json())
        after = client.get("/v1/workflows/xero-invoice-paid-to-hubspot", headers=t.headers).get_json()
        assert after == before, body
    ok = put(client, t, "xero-invoice-paid-to-hubspot", {"enabled": True, "connections": {
        "source": xero, "target": hubspot}, "mappings": {"deal_stage": "won-paid"}})
    assert ok.status_code == 200, ok.get_json()
    assert ok.get_json()["enabled"] and ok.get_json()["mappings"]["deal_stage"] == "won-paid"
    assert put(client, t, "hubspot-deal-won-to-asana", {"mappings": {"project_gid": "abc"}}).status_code == 422
    log = client.get("/v1/audit-log", headers=t.headers).get_json()["items"]
    assert any(e["action"] == "workflow.updated" and e["target_id"] == "xero-invoice-paid-to-hubspot" for e in log)


def test_tenants_never_see_or_bind_each_others_settings_or_connections(client, make_tenant):
    a, b = make_tenant("wfa"), make_tenant("wfb")
    xa, _ = custom_connection(a, "xero")
    ha, _ = custom_connection(a, "hubspot")
    assert put(client, a, "xero-invoice-paid-to-hubspot",
               {"enabled": True, "connections": {"source": xa, "target": ha}}).status_code == 200
    seen_by_b = client.get("/v1/workflows/xero-invoice-paid-to-hubspot", headers=b.headers).get_json()
    assert seen_by_b["enabled"] is False and seen_by_b["connections"] == {}
    # B cannot bind A's connections: for B they do not exist
    r = put(client, b, "xero-invoice-paid-to-hubspot", {"connections": {"source": xa, "target": ha}})
    assert r.status_code == 422 and "no connection" in r.get_json()["detail"]
    viewer = client.post("/v1/api-keys", json={"name": "ro", "role": "VIEWER"}, headers=a.headers).get_json()
    assert client.put("/v1/workflows/echo", json={"enabled": False},
                      headers={"X-API-Key": viewer["secret"]}).status_code == 403


def xero_delivery(tenant_id, invoice_id):
    return json.dumps({"events": [{
        "resourceUrl": f"https://api.xero.com/api.xro/2.0/Invoices/{invoice_id}", "resourceId": invoice_id,
        "eventDateUtc": "2026-11-25T10:00:00.000", "eventType": "UPDATE", "eventCategory": "INVOICE",
        "tenantId": tenant_id, "tenantType": "ORGANISATION"}], "firstEventSequence": 1, "lastEventSequence": 1,
        "entropy": uuid.uuid4().hex}).encode()


def test_an_event_starts_a_workflow_only_from_its_bound_source_connection(client, make_tenant):
    t = make_tenant("wftrig")
    secret = "xero-webhook-key-0123456789"
    orgs = {"bound": str(uuid.uuid4()), "other": str(uuid.uuid4())}
    bound, bound_token = custom_connection(t, "xero", (secret,), account_id=orgs["bound"])
    other, other_token = custom_connection(t, "xero", (secret,), account_id=orgs["other"])
    hub, _ = custom_connection(t, "hubspot")
    assert put(client, t, "echo", {"enabled": False}).status_code == 200
    assert put(client, t, "xero-invoice-paid-to-hubspot",
               {"enabled": True, "connections": {"source": bound, "target": hub}}).status_code == 200

    def deliver(token):  # each connection's own organisation (an event naming another is dropped)
        body = xero_delivery(orgs["bound" if token == bound_token else "other"], str(uuid.uuid4()))
        sig = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
        assert client.post(f"/v1/hooks/{token}", data=body, headers={"x-xero-signature": sig}).status_code == 200
        with tenant_context(t.ref):
            processor.process_pending()  # the inbox processor, behind the 2xx

    def jobs():
        with tenant_context(t.ref), tenant_session() as s:
            return s.scalar(select(func.count()).select_from(Job).where(
                Job.workflow == "xero-invoice-paid-to-hubspot"))
    deliver(other_token)
    assert jobs() == 0
    deliver(bound_token)
    assert jobs() == 1


def salesforce_workflow(client, t):
    conn = connect(client, t, "salesforce")
    r = put(client, t, "revenova-invoice-sync", {"enabled": True, "connections": {"source": conn["id"]},
                                                 "schedule_seconds": 300})
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    now = datetime.now(UTC)
    assert now <= datetime.fromisoformat(body["next_run_at"]) <= now + timedelta(seconds=301)  # spread
    return conn


def make_due(t, name="revenova-invoice-sync"):
    with tenant_context(t.ref), tenant_transaction() as s:
        s.get(WorkflowSetting, name).next_run_at = datetime.now(UTC) - timedelta(seconds=1)


def run_scheduled(t) -> str:
    make_due(t)
    with tenant_context(t.ref):
        assert polling.schedule_due() == 1
        with tenant_session() as s:
            job = s.scalars(select(Job).where(Job.workflow == "revenova-invoice-sync", Job.status == "QUEUED")
                            .order_by(Job.created_at.desc())).first()
        return str(job.id), execute_job(job.id)


def polled(t, conn_id):
    with tenant_context(t.ref), tenant_session() as s:
        events = s.scalar(select(func.count()).select_from(InboundEvent).where(InboundEvent.provider == "salesforce"))
        cursor = s.get(PollCursor, ("revenova-invoice-sync", uuid.UUID(conn_id)))
    return events, cursor.cursor if cursor else None


def test_polling_advances_the_cursor_only_with_the_events(client, make_tenant, sim, monkeypatch):
    t = make_tenant("poll")
    conn = salesforce_workflow(client, t)
    with tenant_context(t.ref):
        assert polling.schedule_due() == 0  # not due yet
    # a crash between fetch and commit: nothing stored, the cursor stays put
    from core.inbound import inbox

    def crash(*args, **kwargs):
        raise RuntimeError("worker died before the commit")
    monkeypatch.setattr(inbox, "add_events", crash)
    job_id, status = run_scheduled(t)
    assert status == "FAILED" and polled(t, conn["id"]) == (0, None)
    monkeypatch.undo()
    job_id, status = run_scheduled(t)
    assert status == "COMPLETED"
    events, cursor = polled(t, conn["id"])
    seeded = len(sim.provider("salesforce").records["rtms__CustomerInvoice__c"])
    assert events == seeded > 0 and cursor
    detail = client.get(f"/v1/jobs/{job_id}", headers=t.headers).get_json()
    assert detail["result"]["new_events"] == seeded
    assert len([r for r in detail["related_records"] if r["action"] == "read"]) == seeded
    # nothing new: nothing stored, cursor unchanged
    assert run_scheduled(t)[1] == "COMPLETED" and polled(t, conn["id"]) == (events, cursor)
    # one invoice changes at the provider: exactly one new event, the cursor moves to it
    sim.provider("salesforce").create("rtms__CustomerInvoice__c", {"Name": "INV-NEW", "rtms__Total__c": 10.0})
    assert run_scheduled(t)[1] == "COMPLETED"
    events2, cursor2 = polled(t, conn["id"])
    assert events2 == events + 1 and cursor2 > cursor


def test_a_429_puts_the_job_back_no_sooner_than_retry_after(client, make_tenant, sim, monkeypatch):
    from core.execution import service as execution

    t = make_tenant("poll429")
    salesforce_workflow(client, t)
    published = []
    real = execution.outbox.publish
    monkeypatch.setattr(execution.outbox, "publish", lambda messages: (published.extend(messages), real(messages)))
    sim.force_rate_limit("salesforce", retry_after=45, count=1)
    job_id, status = run_scheduled(t)
    assert status == "QUEUED"
    job = client.get(f"/v1/jobs/{job_id}", headers=t.headers).get_json()
    assert "rate limited" in job["error"]
    retries = [m.countdown for m in published if m.args == [job_id] and m.countdown]
    assert retries and all(c >= 45 for c in retries)  # Salesforce sends no Retry-After: its connector says 1 h


def test_a_connection_needing_reauthorisation_fails_the_job_with_a_clear_error(client, make_tenant, sim):
    t = make_tenant("pollauth")
    conn = salesforce_workflow(client, t)
    with tenant_context(t.ref), tenant_transaction() as s:
        from core.connections.models import Connection

        s.get(Connection, uuid.UUID(conn["id"])).status = "reauth_required"
    job_id, status = run_scheduled(t)
    assert status == "FAILED"
    assert "re-authorisation" in client.get(f"/v1/jobs/{job_id}", headers=t.headers).get_json()["error"]


def test_artifacts_are_listed_with_presigned_links_and_never_across_tenants(client, make_tenant):
    a, b = make_tenant("arta"), make_tenant("artb")
    job = client.post("/v1/jobs", json={"workflow": "echo", "input": {}}, headers=a.headers).get_json()
    with tenant_context(a.ref):
        key = artifacts.put(job["id"], "invoice.pdf", b"%PDF-1.7 pretend", "application/pdf")
    assert key == f"{a.slug}/{job['id']}/invoice.pdf"
    items = client.get(f"/v1/jobs/{job['id']}/artifacts", headers=a.headers).get_json()["items"]
    assert [i["name"] for i in items] == ["invoice.pdf"] and items[0]["expires_in"] <= 300
    assert requests.get(items[0]["url"], timeout=10).content == b"%PDF-1.7 pretend"
    assert client.get(f"/v1/jobs/{job['id']}/artifacts", headers=b.headers).status_code == 404
    b_job = client.post("/v1/jobs", json={"workflow": "echo", "input": {}}, headers=b.headers).get_json()
    assert client.get(f"/v1/jobs/{b_job['id']}/artifacts", headers=b.headers).get_json()["items"] == []
    with tenant_context(a.ref), pytest.raises(ValueError):
        artifacts.put(job["id"], "../artb/x", b"")
