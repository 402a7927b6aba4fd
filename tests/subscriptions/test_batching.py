"""One delivery task claims a batch of its subscription's due messages in one statement and settles the 2xx
answers in one more; the batch stops at the first other answer (that message keeps the retry schedule) or at its
time budget, and what it did not try goes back to pending, untouched, with a new task. No Celery worker runs in
this module: the tests call the task's code themselves, so what one call did is all that happened."""
from __future__ import annotations

import threading
from contextlib import contextmanager

from sqlalchemy import event, select
from sqlalchemy.engine import Engine

from core.events import catalogue, recorder
from core.events.models import SubscriptionAttempt, SubscriptionMessage
from core.subscriptions import delivery
from tenancy.context import tenant_context
from tenancy.db import tenant_session, tenant_transaction
from tests.subscriptions.conftest import messages_of, subscribe

TYPE = catalogue.CONNECTION_CONNECTED


def record(tenant, n) -> list:
    with tenant_context(tenant.ref):
        for _ in range(n):
            with tenant_transaction() as session:
                recorder.record(session, TYPE, {"connection_id": None, "provider": "batch-test"})
        with tenant_session() as session:
            return list(session.scalars(select(SubscriptionMessage.id).order_by(SubscriptionMessage.seq)))


@contextmanager
def statements_in_this_thread():
    seen, me = [], threading.get_ident()

    def note(conn, cursor, statement, *args):
        if threading.get_ident() == me:
            seen.append(statement)

    event.listen(Engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", note)


def attempts_of(tenant):
    with tenant_context(tenant.ref), tenant_session() as session:
        return list(session.scalars(select(SubscriptionAttempt)))


def test_one_task_delivers_its_subscriptions_due_messages_with_one_claim_and_one_settle(
        client, make_tenant, receiver, knobs):
    t = make_tenant("batch")
    sub = subscribe(client, t, receiver, "/batch", event_types=(TYPE,))
    ids = record(t, 5)
    with tenant_context(t.ref), statements_in_this_thread() as seen:
        outcome = delivery.deliver_holding_slot(ids[0], batch=5)
    assert outcome == "delivered"
    assert len(seen) == 2  # the claim and the settle of all five
    arrived = receiver.at("/batch")
    assert [a.msg_id for a in arrived] == [f"msg_{i.hex}" for i in ids]  # creation order, each once
    assert all(a.verified_by for a in arrived)
    assert [(m.status, m.attempts) for m in messages_of(t, sub["id"])] == [("delivered", 1)] * 5
    assert sorted(a.message_id for a in attempts_of(t)) == sorted(ids)
    with tenant_context(t.ref):
        assert delivery.deliver_holding_slot(ids[3], batch=5) == "not-due"  # its own task, later: nothing to do


def test_the_batch_stops_at_a_failure_and_releases_what_it_did_not_try(
        client, make_tenant, receiver, knobs, monkeypatch):
    t = make_tenant("batch-fail")
    sub = subscribe(client, t, receiver, "/batch-fail", event_types=(TYPE,))
    receiver.scripts["/batch-fail"] = [204, 500]
    ids = record(t, 4)
    published = []
    monkeypatch.setattr(delivery.outbox, "publish", lambda messages: published.extend(messages) or len(messages))
    with tenant_context(t.ref):
        assert delivery.deliver_holding_slot(ids[0], batch=4) == "delivered"
    assert len(receiver.at("/batch-fail")) == 2
    first, failed, *untried = messages_of(t, sub["id"])
    assert (first.status, first.attempts) == ("delivered", 1)
    assert (failed.status, failed.attempts, failed.response_status) == ("pending", 1, 500)  # on the schedule
    assert [(m.status, m.attempts, m.lease_until) for m in untried] == [("pending", 0, None)] * 2
    assert {str(m.id) for m in untried} <= {m.args[0] for m in published}  # a new task each
    assert [a.outcome for a in sorted(attempts_of(t), key=lambda a: ids.index(a.message_id))] == [
        "delivered", "retrying"]


def test_a_batch_takes_no_next_message_past_its_time_budget(client, make_tenant, receiver, knobs, monkeypatch):
    t = make_tenant("batch-budget")
    sub = subscribe(client, t, receiver, "/batch-budget", event_types=(TYPE,))
    ids = record(t, 3)
    monkeypatch.setattr(delivery, "BATCH_SECONDS", 0.0)
    with tenant_context(t.ref):
        assert delivery.deliver_holding_slot(ids[0], batch=3) == "delivered"
    assert [a.msg_id for a in receiver.at("/batch-budget")] == [f"msg_{ids[0].hex}"]
    assert [(m.status, m.attempts) for m in messages_of(t, sub["id"])] == [
        ("delivered", 1), ("pending", 0), ("pending", 0)]
    with tenant_context(t.ref):  # a released message's task delivers it (and the rest of the batch, budget allowing)
        monkeypatch.setattr(delivery, "BATCH_SECONDS", 60.0)
        assert delivery.deliver_holding_slot(ids[1], batch=3) == "delivered"
    assert [m.status for m in messages_of(t, sub["id"])] == ["delivered"] * 3


def test_a_batch_holds_only_its_own_subscriptions_messages(client, make_tenant, receiver, knobs):
    t, other = make_tenant("batch-own"), make_tenant("batch-other")
    mine = subscribe(client, t, receiver, "/batch-mine", event_types=(TYPE,))
    theirs = subscribe(client, t, receiver, "/batch-theirs", event_types=(TYPE,))
    foreign = subscribe(client, other, receiver, "/batch-foreign", event_types=(TYPE,))
    record(t, 2)
    record(other, 2)
    first_of_mine = messages_of(t, mine["id"])[0].id
    with tenant_context(t.ref):
        assert delivery.deliver_holding_slot(first_of_mine, batch=10) == "delivered"
    assert len(receiver.at("/batch-mine")) == 2
    assert receiver.at("/batch-theirs") == [] and receiver.at("/batch-foreign") == []
    assert [m.status for m in messages_of(t, theirs["id"])] == ["pending"] * 2  # not claimed, not delayed
    assert [m.status for m in messages_of(other, foreign["id"])] == ["pending"] * 2
    with tenant_context(t.ref):  # another tenant's message id finds nothing in this tenant
        assert delivery.deliver_holding_slot(messages_of(other, foreign["id"])[0].id, batch=10) == "not-due"
    assert [m.status for m in messages_of(other, foreign["id"])] == ["pending"] * 2


def test_a_replay_claims_only_the_message_it_names(client, make_tenant, receiver, knobs):
    t = make_tenant("batch-one")
    sub = subscribe(client, t, receiver, "/batch-one", event_types=(TYPE,))
    ids = record(t, 3)
    with tenant_context(t.ref):
        assert delivery.deliver_holding_slot(ids[1]) == "delivered"  # batch=1: deliver_in_order's way
    assert [a.msg_id for a in receiver.at("/batch-one")] == [f"msg_{ids[1].hex}"]
    assert [m.status for m in messages_of(t, sub["id"])] == ["pending", "delivered", "pending"]
