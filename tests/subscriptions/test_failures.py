"""An endpoint that keeps failing: retried on the schedule (Retry-After honoured), given up on, disabled after the
threshold (or at once on 410) with the tenant's admins told through Novu — not through the endpoint; re-enabling
offers what failed meanwhile, and a replay delivers it in creation order. Payload limit; per-tenant concurrency."""
from __future__ import annotations

import threading

from sqlalchemy import select

from core.notify.models import Notification
from core.platform.models import AuditEntry
from notifications import novu
from tenancy.context import tenant_context
from tenancy.db import tenant_session
from tests.subscriptions.conftest import messages_of, run_jobs, subscribe, subscription_of, wait_until


def notifications_of(tenant, event):
    with tenant_context(tenant.ref), tenant_session() as session:
        return list(session.scalars(select(Notification).where(Notification.event == event)))


def test_a_failing_endpoint_is_disabled_admins_are_told_and_a_replay_delivers_in_creation_order(
        client, make_tenant, receiver, worker, knobs, fake_novu):
    knobs.set(subscription_retry_schedule=(0.05,), subscription_disable_after_messages=3)
    t = make_tenant("fail")
    sub = subscribe(client, t, receiver, "/failing")
    receiver.scripts["/failing"] = [500] * 6  # two attempts each for three messages
    run_jobs(client, t, 3)
    wait_until(lambda: not subscription_of(t, sub["id"]).enabled)
    state = client.get(f"/v1/subscriptions/{sub['id']}", headers=t.headers).get_json()
    assert "3 messages in a row" in state["disabled_reason"] and state["failing_since"]
    assert [m.status for m in messages_of(t, sub["id"])] == ["failed"] * 3
    assert all(m.attempts == 2 for m in messages_of(t, sub["id"]))
    [told] = wait_until(lambda: [n for n in notifications_of(t, "subscription-disabled") if n.status == "sent"])
    assert told.request["to"][0] == novu.topic(t.slug, "admins")
    assert told.request["payload"]["subscription_id"] == sub["id"]
    assert [r.body["name"] for r in fake_novu.for_tenant(t.slug)] == ["subscription-disabled"]

    run_jobs(client, t, 2)  # while disabled: kept as failed, nothing sent
    wait_until(lambda: len(messages_of(t, sub["id"])) == 5)
    assert len(receiver.at("/failing")) == 6
    r = client.patch(f"/v1/subscriptions/{sub['id']}", headers=t.headers, json={"enabled": True})
    assert r.status_code == 200
    assert r.get_json()["recovery"]["failed_messages"] == 5 and r.get_json()["enabled"] is True
    knobs.set(subscription_tenant_concurrency=4)
    r = client.post(f"/v1/subscriptions/{sub['id']}/replay", headers=t.headers,
                    json={"since": r.get_json()["recovery"]["since"]})
    assert r.status_code == 202 and r.get_json() == {"count": 5}
    wait_until(lambda: all(m.status == "delivered" for m in messages_of(t, sub["id"])))
    replayed = [a.msg_id for a in receiver.at("/failing")[6:]]
    assert replayed == [f"msg_{m.id.hex}" for m in messages_of(t, sub["id"])]  # creation order
    with tenant_context(t.ref), tenant_session() as session:
        actions = set(session.scalars(select(AuditEntry.action).where(AuditEntry.target_id == sub["id"])))
    assert {"subscription.created", "subscription.updated", "subscription.replayed"} <= actions


def test_410_disables_at_once(client, make_tenant, receiver, worker):
    t = make_tenant("gone")
    sub = subscribe(client, t, receiver, "/gone")
    receiver.scripts["/gone"] = [410]
    run_jobs(client, t, 1)
    wait_until(lambda: not subscription_of(t, sub["id"]).enabled)
    [attempt] = client.get(f"/v1/subscriptions/{sub['id']}/attempts", headers=t.headers).get_json()["items"]
    assert (attempt["outcome"], attempt["status_code"]) == ("gone", 410)
    assert attempt["response_body"] == '{"ok": false}' and attempt["duration_ms"] >= 0
    assert wait_until(lambda: notifications_of(t, "subscription-disabled"))


def test_retry_after_on_429_is_honoured(client, make_tenant, receiver, worker):
    t = make_tenant("slow")
    sub = subscribe(client, t, receiver, "/429")
    receiver.scripts["/429"] = [(429, {"Retry-After": "900"})]
    run_jobs(client, t, 1)
    [m] = wait_until(lambda: [m for m in messages_of(t, sub["id"]) if m.attempts == 1 and m.status == "pending"])
    assert (m.next_attempt_at - m.updated_at).total_seconds() >= 899  # not the schedule's 5 s
    assert m.response_status == 429


def test_a_payload_over_the_limit_is_refused_not_sent(client, make_tenant, receiver, worker, knobs):
    knobs.set(subscription_max_payload_bytes=50)
    t = make_tenant("big")
    sub = subscribe(client, t, receiver, "/big")
    run_jobs(client, t, 1)
    [m] = wait_until(lambda: [m for m in messages_of(t, sub["id"]) if m.status == "failed"])
    assert "exceeds the limit" in m.last_error and m.attempts == 1
    assert receiver.at("/big") == []
    state = subscription_of(t, sub["id"])  # our limit, not the endpoint's failure
    assert state.enabled and state.failing_since is None and state.consecutive_failures == 0


def test_one_tenants_slow_endpoint_does_not_hold_up_another_tenants_deliveries(
        client, make_tenant, receiver, worker, knobs):
    knobs.set(subscription_tenant_concurrency=1)
    slow, quick = make_tenant("slow"), make_tenant("quick")
    subscribe(client, slow, receiver, "/slow")
    subscribe(client, quick, receiver, "/quick")
    in_flight, most = [0], [0]
    lock, release = threading.Lock(), threading.Event()
    original = receiver._answer

    def answer(path):  # the slow tenant's endpoint holds each request until the quick one was served
        if path == "/slow":
            with lock:
                in_flight[0] += 1
                most[0] = max(most[0], in_flight[0])
            release.wait(20)
            with lock:
                in_flight[0] -= 1
        return original(path)

    receiver._answer = answer
    try:
        run_jobs(client, slow, 4)
        wait_until(lambda: in_flight[0] == 1)
        run_jobs(client, quick, 1)
        wait_until(lambda: [a for a in receiver.at("/quick") if a.answer < 300])  # served while /slow hangs
        assert in_flight[0] == 1 and receiver.at("/slow") == []
    finally:
        release.set()
        receiver._answer = original
    wait_until(lambda: len([a for a in receiver.at("/slow") if a.answer < 300]) == 4)
    assert most[0] == 1  # never more than the tenant's one slot


def test_an_endpoint_failing_for_days_is_disabled_at_its_next_failure(client, make_tenant, receiver, worker):
    from datetime import timedelta

    from sqlalchemy import func, update

    from core.events.models import Subscription
    from tenancy.db import tenant_transaction

    t = make_tenant("days")
    sub = subscribe(client, t, receiver, "/days")
    with tenant_context(t.ref), tenant_transaction() as session:  # it has been failing for six days
        session.execute(update(Subscription).where(Subscription.id == sub["id"]).values(
            failing_since=func.now() - timedelta(days=6)))
    receiver.scripts["/days"] = [503]
    run_jobs(client, t, 1)
    wait_until(lambda: not subscription_of(t, sub["id"]).enabled)
    assert "has been failing since" in subscription_of(t, sub["id"]).disabled_reason
    assert wait_until(lambda: notifications_of(t, "subscription-disabled"))
