"""Deliveries reach a real receiver, each verified by the official `standardwebhooks` package, also while a
secret rotates; an outage loses nothing; duplicates carry the same id; one tenant's events never reach another's
endpoints."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from core.events.models import SubscriptionMessage
from core.subscriptions import sweeper
from tenancy.context import tenant_context
from tenancy.db import tenant_transaction
from tests.subscriptions.conftest import messages_of, run_jobs, subscribe, wait_until


def delivered_ids(receiver, path):
    return {a.msg_id for a in receiver.at(path) if 200 <= a.answer < 300}


def test_every_delivery_verifies_with_standardwebhooks_also_during_a_rotation(client, make_tenant, receiver, worker):
    t = make_tenant("sw")
    sub = subscribe(client, t, receiver, "/rotate")
    jobs = run_jobs(client, t, 3)
    wait_until(lambda: len(delivered_ids(receiver, "/rotate")) == 3)
    old = sub["secret"]
    r = client.post(f"/v1/subscriptions/{sub['id']}/rotate-secret", headers=t.headers)
    assert r.status_code == 200
    new = r.get_json()["secret"]
    assert new.startswith("whsec_") and new != old
    receiver.secrets["/rotate"] = [old, new]
    run_jobs(client, t, 3)
    wait_until(lambda: len(delivered_ids(receiver, "/rotate")) == 6)
    arrivals = receiver.at("/rotate")
    assert all(a.verified_by for a in arrivals)
    assert [a.verified_by for a in arrivals[3:]] == [[old, new]] * 3  # both signatures during the grace period
    assert all(a.verified_by == [old] for a in arrivals[:3])
    assert {a.body["data"]["job_id"] for a in arrivals[:3]} == set(jobs)
    assert {a.body["type"] for a in arrivals} == {"job.completed"}


def test_receiver_down_then_back_every_message_arrives_once_with_a_stable_id(client, make_tenant, receiver, worker):
    t = make_tenant("down")
    sub = subscribe(client, t, receiver, "/down")
    receiver.default = 503
    try:
        run_jobs(client, t, 5)
        wait_until(lambda: len(messages_of(t, sub["id"])) == 5 and
                   all(m.attempts == 1 and m.status == "pending" for m in messages_of(t, sub["id"])))
        for m in messages_of(t, sub["id"]):  # the production schedule: first retry after 5 s ± 20 %
            wait = (m.next_attempt_at - m.updated_at).total_seconds()
            assert 3.9 <= wait <= 6.1, wait
    finally:
        receiver.default = 204
    with tenant_context(t.ref), tenant_transaction() as session:  # time passes: the retries fall due
        session.execute(update(SubscriptionMessage).where(SubscriptionMessage.subscription_id == sub["id"])
                        .values(next_attempt_at=datetime.now(UTC) - timedelta(minutes=5)))
    with tenant_context(t.ref):
        assert sweeper.sweep_stranded(overdue=timedelta(0)) == 5
    wait_until(lambda: all(m.status == "delivered" for m in messages_of(t, sub["id"])))
    expected = {f"msg_{m.id.hex}" for m in messages_of(t, sub["id"])}
    assert delivered_ids(receiver, "/down") == expected  # none lost
    arrivals = receiver.at("/down")
    assert len(arrivals) >= 10
    by_id = {}
    for a in arrivals:  # a retry is the same message: same id, same body
        by_id.setdefault(a.msg_id, set()).add(str(sorted(a.body.items())))
    assert set(by_id) == expected and all(len(bodies) == 1 for bodies in by_id.values())


def test_events_of_one_tenant_never_reach_another_tenants_endpoint(client, make_tenant, receiver, worker):
    a, b = make_tenant("iso-a"), make_tenant("iso-b")
    subscribe(client, a, receiver, "/iso-a")
    subscribe(client, b, receiver, "/iso-b")
    jobs = run_jobs(client, a, 3)
    wait_until(lambda: len(delivered_ids(receiver, "/iso-a")) == 3)
    run_jobs(client, b, 1)
    wait_until(lambda: len(delivered_ids(receiver, "/iso-b")) == 1)
    assert {x.body["data"]["job_id"] for x in receiver.at("/iso-a")} == set(jobs)
    assert not {x.body["data"]["job_id"] for x in receiver.at("/iso-b")} & set(jobs)
