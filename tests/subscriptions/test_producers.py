"""Each producer records its event in its own transaction, for the subscriptions whose types and filters match:
a verified inbound webhook (event.received, filtered by connection), a failed job (job.failed, filtered by
workflow), a connection needing re-authorisation (connection.reauth_required)."""
from __future__ import annotations

import time
import uuid

from standardwebhooks.webhooks import Webhook

from sqlalchemy import select

from core.connections import refresh, store
from core.inbound import processor
from core.inbound.models import InboundEvent
from tenancy.context import tenant_context
from tenancy.db import tenant_session
from tests.subscriptions.conftest import run_jobs, subscribe, wait_until

SECRET = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="


def custom_connection(tenant):
    with tenant_context(tenant.ref):
        conn, token = store.create_connection(provider="custom", webhook_secrets=[SECRET])
    return conn.id, token


def send_hook(client, tenant, token, event_type):
    """A verified webhook, fanned out as `zixly inbox` does behind the answer; its event's id."""
    body = f'{{"type": "{event_type}", "data": {{"id": "x"}}}}'
    msg_id, now = "msg_" + uuid.uuid4().hex, int(time.time())
    signature = Webhook(SECRET).sign(msg_id, _datetime(now), body)
    r = client.post(f"/v1/hooks/{token}", data=body, headers={
        "webhook-id": msg_id, "webhook-timestamp": str(now), "webhook-signature": signature,
        "Content-Type": "application/json"})
    assert r.status_code == 200 and r.get_json()["received"] == 1, r.get_json()
    with tenant_context(tenant.ref):
        processor.process_pending()
    with tenant_context(tenant.ref), tenant_session() as session:
        return str(session.scalar(select(InboundEvent.id).where(InboundEvent.provider_event_id == msg_id)))


def _datetime(seconds):
    from datetime import UTC, datetime

    return datetime.fromtimestamp(seconds, UTC)


def delivered(receiver, path):
    return [a.body for a in receiver.at(path) if a.answer < 300]


def test_producers_record_their_events_for_the_matching_subscriptions(client, make_tenant, receiver, worker):
    t = make_tenant("prod", plan="pro")
    first, first_token = custom_connection(t)
    _second, second_token = custom_connection(t)
    subscribe(client, t, receiver, "/p-first", ["event.received"], connection_ids=[str(first)])
    subscribe(client, t, receiver, "/p-all", ["event.received", "connection.reauth_required"])
    subscribe(client, t, receiver, "/p-echo", ["job.failed"], workflows=["echo"])
    subscribe(client, t, receiver, "/p-other", ["job.failed"], workflows=["hubspot-deal-won-to-asana"])

    one = send_hook(client, t, first_token, "invoice.paid")
    two = send_hook(client, t, second_token, "invoice.voided")
    [failed] = run_jobs(client, t, 1, fail="permanent")
    with tenant_context(t.ref):
        refresh.mark_reauth(first, "invalid_grant")

    wait_until(lambda: len(delivered(receiver, "/p-all")) == 3 and delivered(receiver, "/p-echo"))
    assert [b["data"]["event_id"] for b in delivered(receiver, "/p-first")] == [one]
    received = [b for b in delivered(receiver, "/p-all") if b["type"] == "event.received"]
    assert {(b["data"]["event_id"], b["data"]["event_type"]) for b in received} == {
        (one, "invoice.paid"), (two, "invoice.voided")}
    [reauth] = [b for b in delivered(receiver, "/p-all") if b["type"] == "connection.reauth_required"]
    assert reauth["data"] == {"connection_id": str(first), "provider": "custom", "reason": "invalid_grant"}
    [job] = delivered(receiver, "/p-echo")
    assert job["type"] == "job.failed" and job["data"]["job_id"] == failed and job["data"]["workflow"] == "echo"
    assert "permanent" in job["data"]["error"] and job["data"]["attempts"] == 1
    assert delivered(receiver, "/p-other") == []
