"""The deliveries API: list with filters and cursors, read one, replay one or many (ADMIN only, audited);
another tenant gets 404; bad input is a 4xx problem and changes nothing. SQS is unreachable here, so every
delivery stays where the test puts it."""
from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from core.connections import store
from core.outbound import service as outbound
from core.outbound import writes
from core.outbound.models import Delivery
from core.platform.models import AuditEntry
from tenancy.context import tenant_context
from tenancy.db import tenant_session, tenant_transaction


def make_deliveries(t, statuses, provider="hubspot"):
    """One connection and a delivery per status, oldest first."""
    with tenant_context(t.ref):
        conn, _ = store.create_connection(provider=provider, name=f"{provider} test")
        ids = []
        for n, status in enumerate(statuses):
            ident = writes.request(provider=provider, connection_id=conn.id, record_key=f"rec:{n}",
                                     operation="update_deal" if provider == "hubspot" else "create_invoice",
                                     args={"n": n}, dedup_key=f"api:{uuid.uuid4()}")
            with tenant_transaction() as s:
                s.execute(update(Delivery).where(Delivery.id == ident).values(
                    status=status, queued_at=datetime.now(UTC) - timedelta(minutes=len(statuses) - n)))
            ids.append(str(ident))
    return conn.id, ids


def key(client, t, role):
    return {"X-API-Key": client.post("/v1/api-keys", json={"name": role, "role": role},
                                     headers=t.headers).get_json()["secret"]}


def rows(t, ids):
    with tenant_context(t.ref), tenant_session() as s:
        found = {str(r.id): r for r in s.scalars(select(Delivery).where(Delivery.id.in_(ids)))}
    return [found[i] for i in ids]


def test_list_filters_and_pages_newest_first(client, make_tenant, sqs_down):
    t = make_tenant("dl", plan="pro")
    conn_id, ids = make_deliveries(t, ["delivered", "dead", "failed", "dead", "queued"])
    listed = client.get("/v1/deliveries?limit=2", headers=t.headers).get_json()
    assert [d["id"] for d in listed["items"]] == [ids[4], ids[3]]
    rest = client.get(f"/v1/deliveries?limit=10&cursor={listed['next_cursor']}", headers=t.headers).get_json()
    assert [d["id"] for d in rest["items"]] == [ids[2], ids[1], ids[0]] and rest["next_cursor"] is None
    dead = client.get(f"/v1/deliveries?status=dead&provider=hubspot&connection_id={conn_id}",
                      headers=t.headers).get_json()
    assert [d["id"] for d in dead["items"]] == [ids[3], ids[1]]
    assert client.get("/v1/deliveries?provider=xero", headers=t.headers).get_json()["items"] == []
    one = client.get(f"/v1/deliveries/{ids[1]}", headers=key(client, t, "VIEWER")).get_json()
    assert one["status"] == "dead" and one["args"] == {"n": 1} and one["operation"] == "update_deal"
    assert one["links"]["self"] == f"/v1/deliveries/{ids[1]}" and "response" in one


@pytest.mark.parametrize("query", ["status=lost", "provider=myspace", "connection_id=nope", "limit=0",
                                   "limit=201", "job_id=1"])
def test_bad_list_filters_are_422(client, make_tenant, query):
    t = make_tenant("dlq", plan="pro")
    r = client.get(f"/v1/deliveries?{query}", headers=t.headers)
    assert r.status_code == 422 and r.content_type == "application/problem+json"


def test_another_tenant_sees_and_replays_nothing_of_ours(client, make_tenant, sqs_down):
    a, b = make_tenant("dla", plan="pro"), make_tenant("dlb", plan="pro")
    _, ids = make_deliveries(a, ["dead"])
    for method, path in (("get", f"/v1/deliveries/{ids[0]}"), ("post", f"/v1/deliveries/{ids[0]}/replay")):
        r = getattr(client, method)(path, headers=b.headers)
        assert r.status_code == 404 and r.content_type == "application/problem+json"
    assert client.get("/v1/deliveries", headers=b.headers).get_json()["items"] == []
    bulk = client.post("/v1/deliveries/replay", json={"status": ["dead", "failed"]}, headers=b.headers)
    assert bulk.status_code == 202 and bulk.get_json()["count"] == 0
    assert rows(a, ids)[0].status == "dead"
    for unknown in (str(uuid.uuid4()), "not-a-uuid"):
        assert client.get(f"/v1/deliveries/{unknown}", headers=a.headers).status_code == 404


def test_replay_needs_an_admin_and_a_failed_or_dead_delivery(client, make_tenant, sqs_down):
    t = make_tenant("dlr", plan="pro")
    _, ids = make_deliveries(t, ["dead", "delivered", "queued"])
    for role in ("VIEWER", "EDITOR"):
        headers = key(client, t, role)
        assert client.post(f"/v1/deliveries/{ids[0]}/replay", headers=headers).status_code == 403
        assert client.post("/v1/deliveries/replay", json={}, headers=headers).status_code == 403
    for ident in ids[1:]:
        r = client.post(f"/v1/deliveries/{ident}/replay", headers=t.headers)
        assert r.status_code == 409 and r.get_json()["type"].endswith("/delivery-not-replayable")
    assert [r.status for r in rows(t, ids)] == ["dead", "delivered", "queued"]
    assert [r.generation for r in rows(t, ids)] == [0, 0, 0]
    r = client.post(f"/v1/deliveries/{ids[0]}/replay", headers=t.headers)
    assert r.status_code == 202 and r.get_json()["status"] == "queued" and r.get_json()["replays"] == 1
    replayed = rows(t, ids)[0]
    assert (replayed.status, replayed.generation, replayed.attempts, replayed.sent_at) == ("queued", 1, 0, None)


@pytest.mark.parametrize("body", [{"status": ["delivered"]}, {"status": "dead"}, {"status": []},
                                  {"provider": "myspace"}, {"connection_id": "x"}, {"before": "yesterday"},
                                  {"before": "2026-01-01T00:00:00"}, {"limit": 0}, {"limit": 5000},
                                  {"dry_run": "maybe"}, {"everything": True}, ["dead"]])
def test_bad_bulk_replays_are_refused_and_change_nothing(client, make_tenant, sqs_down, body):
    t = make_tenant("dlbad", plan="pro")
    _, ids = make_deliveries(t, ["dead"])
    r = client.post("/v1/deliveries/replay", json=body, headers=t.headers)
    assert r.status_code in (400, 422) and r.content_type == "application/problem+json"
    assert rows(t, ids)[0].status == "dead"


def test_bulk_replay_selects_by_filter_counts_and_is_audited(client, make_tenant, sqs_down):
    t = make_tenant("dlbulk", plan="pro")
    hub, hub_ids = make_deliveries(t, ["dead", "failed", "dead", "delivered"])
    xero, xero_ids = make_deliveries(t, ["dead"], provider="xero")
    dry = client.post("/v1/deliveries/replay", json={"status": ["dead", "failed"], "dry_run": True},
                      headers=t.headers)
    assert dry.get_json() == {"count": 4, "dry_run": True}
    assert [r.status for r in rows(t, hub_ids)] == ["dead", "failed", "dead", "delivered"]
    before = rows(t, hub_ids)[2].queued_at.isoformat()
    r = client.post("/v1/deliveries/replay", json={"provider": "hubspot", "connection_id": str(hub),
                                                   "before": before}, headers=t.headers)
    assert r.status_code == 202 and r.get_json() == {"count": 1, "dry_run": False}  # dead, hubspot, older
    assert [(r.status, r.generation) for r in rows(t, hub_ids)] == [
        ("queued", 1), ("failed", 0), ("dead", 0), ("delivered", 0)]
    assert rows(t, xero_ids)[0].status == "dead"
    r = client.post("/v1/deliveries/replay", json={"status": ["failed", "dead"], "limit": 2}, headers=t.headers)
    assert r.get_json()["count"] == 2  # oldest first: the failed and the dead hubspot ones
    assert [r.status for r in rows(t, hub_ids)][:3] == ["queued", "queued", "queued"]
    with tenant_context(t.ref), tenant_session() as s:
        audits = list(s.scalars(select(AuditEntry).where(AuditEntry.action == "delivery.bulk_replayed")
                                .order_by(AuditEntry.id)))
    assert [a.details["count"] for a in audits] == [1, 2]
    assert audits[0].details["deliveries"] == [hub_ids[0]] and audits[0].details["provider"] == "hubspot"
    with tenant_context(t.ref):
        assert outbound.replay_deliveries(actor=None, status=["dead"], provider="salesforce") == 0
