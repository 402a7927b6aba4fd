"""The raw inbox and its processor against the real database: claims with SKIP LOCKED (two processors, each row
fanned out once), a processor that dies before or after its commit (nothing lost, nothing twice), duplicates
across restarts, the NOTIFY wake-up, the beat fallback, poison rows set aside, and tenant isolation."""
import threading
import time
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from connectors.base import WebhookEvent
from core.inbound import listener, processor, raw_inbox
from core.inbound.models import InboundEvent, RawDelivery
from core.jobs.models import Job
from core.platform import fair_queue, metrics, outbox
from core.platform.logs import request_id_var
from core.platform.models import OutboxMessage
from core.platform.queue import celery_app
from core.platform.runtime import redis_client
from tenancy.context import tenant_context
from tenancy.db import tenant_session, tenant_transaction


def event(event_id=None, **extra):
    return WebhookEvent(event_id=event_id or str(uuid.uuid4()), event_type="invoice.paid", account_id=None,
                        resource_id="r-1", occurred_at=None, payload={"id": event_id, **extra})


def keep(t, *events, provider="custom"):
    with tenant_context(t.ref):
        return raw_inbox.keep(provider=provider, connection_id=None, events=list(events),
                              headers={"Content-Type": "application/json", "X-Api-Key": "never kept"},
                              raw_body=b"{}")


def count(t, model, *where):
    with tenant_context(t.ref), tenant_session() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


def process(t, **kwargs):
    with tenant_context(t.ref):
        return processor.process_pending(**kwargs)


@pytest.fixture()
def tenant(app, client, make_tenant):
    """A tenant opted in to `echo` (off by default), so each event starts one job to count."""
    t = make_tenant("inbox")
    r = client.put("/v1/workflows/echo", json={"enabled": True, "event_types": ["*"]}, headers=t.headers)
    assert r.status_code == 200, r.get_json()
    return t


def test_a_kept_delivery_is_one_row_until_processed_then_its_events_jobs_and_tasks(tenant, monkeypatch):
    published = []
    monkeypatch.setattr(outbox, "publish", lambda messages: published.append(len(messages)) or len(messages))
    keep(tenant, event("e1"), event("e2"))
    with tenant_context(tenant.ref), tenant_session() as s:
        [row] = s.scalars(select(RawDelivery)).all()
    assert [e["event_id"] for e in row.events] == ["e1", "e2"] and row.headers == {"content-type": "application/json"}
    assert count(tenant, InboundEvent) == 0 and count(tenant, Job) == 0  # nothing yet behind the 2xx
    keep(tenant, event("e3"))
    assert process(tenant) == 2
    assert count(tenant, RawDelivery) == 0 and count(tenant, InboundEvent) == 3 and count(tenant, Job) == 3
    assert published == [3]  # one publish for the whole batch


def test_two_processors_never_fan_out_the_same_row(tenant):
    """A processor holding a batch (claimed FOR UPDATE SKIP LOCKED, not yet committed) is passed over by a second
    one, which takes the rest without waiting; the first then dies (rolls back): its rows are taken by the next
    run. Every delivery ends fanned out exactly once."""
    for i in range(30):
        keep(tenant, event(f"sk-{i}"))
    held, release, second = threading.Event(), threading.Event(), {}

    def first_processor():
        with tenant_context(tenant.ref), tenant_transaction() as session:
            rows = list(session.scalars(processor._CLAIM.limit(10)))
            held.set()
            release.wait(60)
            assert len(rows) == 10
            raise RuntimeError("the first processor dies before its commit")

    def second_processor():
        second["count"] = process(tenant, batch=7)

    first = threading.Thread(target=lambda: pytest.raises(RuntimeError, first_processor))
    first.start()
    assert held.wait(60)
    other = threading.Thread(target=second_processor)
    other.start()
    other.join(60)  # SKIP LOCKED: it never waits for the first processor's rows
    assert not other.is_alive() and second["count"] == 20
    assert count(tenant, RawDelivery) == 10 and count(tenant, InboundEvent) == 20
    release.set()
    first.join(60)
    assert process(tenant) == 10  # the dead processor's rows: nothing lost
    assert count(tenant, RawDelivery) == 0 and count(tenant, InboundEvent) == 30 and count(tenant, Job) == 30


def test_processors_side_by_side_fan_out_each_row_once(tenant):
    for i in range(120):
        keep(tenant, event(f"par-{i}"))
    done = []
    threads = [threading.Thread(target=lambda: done.append(process(tenant, batch=5))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert sum(done) == 120 and count(tenant, InboundEvent) == 120 and count(tenant, Job) == 120


def test_a_delivery_sent_again_after_a_restart_starts_nothing_twice(tenant):
    before = metrics.events_deduplicated.labels("custom")._value.get()
    keep(tenant, event("again-1"))
    assert process(tenant) == 1  # processed; then the processor restarts and the provider retries
    keep(tenant, event("again-1"), event("again-2"))
    keep(tenant, event("again-2"))  # the same event twice in one batch
    assert process(tenant) == 2
    assert count(tenant, InboundEvent) == 2 and count(tenant, Job) == 2
    assert metrics.events_deduplicated.labels("custom")._value.get() - before == 2


def test_a_processor_failing_before_its_commit_loses_nothing(tenant, monkeypatch):
    """The database goes away in the middle of a batch: nothing of the batch is kept, every raw row stays (none is
    set aside), and the next run fans them all out."""
    from sqlalchemy.exc import OperationalError

    from core.inbound import inbox

    for i in range(5):
        keep(tenant, event(f"crash-{i}"))
    real, calls = inbox.add_events, []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise OperationalError("INSERT", {}, Exception("server closed the connection unexpectedly"))
        return real(*args, **kwargs)

    monkeypatch.setattr(inbox, "add_events", failing)
    with pytest.raises(OperationalError):
        process(tenant)
    assert count(tenant, RawDelivery) == 5 and count(tenant, InboundEvent) == 0
    assert count(tenant, RawDelivery, RawDelivery.error.isnot(None)) == 0
    monkeypatch.setattr(inbox, "add_events", real)
    assert process(tenant) == 5 and count(tenant, InboundEvent) == 5 and count(tenant, Job) == 5


def test_a_processor_dying_after_its_commit_leaves_the_tasks_to_the_relay(tenant, monkeypatch):
    keep(tenant, event("after-commit"))
    monkeypatch.setattr(outbox, "publish", lambda messages: 0)  # the process dies before publishing
    assert process(tenant) == 1
    assert count(tenant, RawDelivery) == 0 and count(tenant, Job) == 1 and count(tenant, OutboxMessage) == 1
    monkeypatch.undo()
    sent = []
    monkeypatch.setattr(outbox, "_send", lambda message, producer=None: sent.append(message.args))
    with tenant_context(tenant.ref):
        assert outbox.relay(min_age=timedelta(0)) == 1
    with tenant_context(tenant.ref), tenant_session() as s:
        assert sent == [[str(s.scalars(select(Job.id)).one())]]


def test_a_row_that_cannot_be_fanned_out_is_set_aside_and_the_rest_go_on(tenant):
    before = metrics.inbox_set_aside.labels("custom")._value.get()
    keep(tenant, event("fine-1"))
    keep(tenant, event("x" * 300))  # longer than provider_event_id allows: the insert fails
    keep(tenant, event("fine-2"))
    assert process(tenant) == 2
    assert count(tenant, InboundEvent) == 2
    with tenant_context(tenant.ref), tenant_session() as s:
        [poison] = s.scalars(select(RawDelivery)).all()
    assert poison.events[0]["event_id"] == "x" * 300 and "DataError" in poison.error
    assert metrics.inbox_set_aside.labels("custom")._value.get() - before == 1
    assert process(tenant) == 0  # set aside: never claimed again


def test_each_tenant_processes_only_its_own_raw_inbox(app, make_tenant):
    a, b = make_tenant("inboxa"), make_tenant("inboxb")
    keep(a, event("iso-1"))
    keep(b, event("iso-1"))  # the same provider event id in another tenant is another tenant's event
    assert process(a) == 1
    assert count(a, InboundEvent) == 1 and count(b, InboundEvent) == 0 and count(b, RawDelivery) == 1
    assert process(b) == 1 and count(b, InboundEvent) == 1


def test_beat_falls_back_to_draining_every_active_tenant(app, make_tenant):
    from workers.inbox import drain_inboxes

    a, b = make_tenant("fallba"), make_tenant("fallbb")
    keep(a, event("fb-1"))
    keep(b, event("fb-2"), event("fb-3"))
    keep(b, event("fb-4"))
    drained = drain_inboxes()
    assert drained[a.slug] == 1 and drained[b.slug] == 2
    assert count(a, InboundEvent) == 1 and count(b, InboundEvent) == 3
    schedule = celery_app.conf.beat_schedule["drain-inboxes"]
    assert schedule["task"] == "zixly.fleet.drain_inboxes" and schedule["schedule"] <= 10


def test_a_notification_wakes_the_listener_which_drains_the_whole_tenant(app, make_tenant, monkeypatch):
    """Once the listener has caught up, the only thing that makes it look at a tenant is a NOTIFY: a delivery
    kept without one (within the hook's notification interval) waits, and the next one that notifies brings
    both in."""
    t = make_tenant("notify")
    running = listener.InboxListener().start()
    try:
        assert running.ready.wait(60)
        monkeypatch.setattr(raw_inbox, "NOTIFY_EVERY", 3600.0)
        raw_inbox._last_notified[(t.ref.shard, t.ref.slug)] = time.monotonic()  # "just notified"
        keep(t, event("quiet"))
        with tenant_context(t.ref), tenant_session() as s:
            assert s.scalar(select(func.count()).select_from(RawDelivery)) == 1
        raw_inbox._last_notified.pop((t.ref.shard, t.ref.slug))
        keep(t, event("loud"))  # notifies
        assert wait_until(lambda: count(t, InboundEvent) == 2)
        assert count(t, RawDelivery) == 0
    finally:
        running.stop()


def wait_until(condition, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_a_delivery_kept_without_a_notification_is_taken_by_the_linger(app, make_tenant, monkeypatch):
    """The hook path notifies at most once per NOTIFY_EVERY per tenant and process; a delivery kept right after a
    notified one sends none, and the listener's second look at the tenant (LINGER after a look that found work)
    takes it. The linger is long here (5 s) so the second delivery is surely kept before that look."""
    t = make_tenant("linger")
    running = listener.InboxListener(linger=5.0).start()
    try:
        assert running.ready.wait(60)
        monkeypatch.setattr(raw_inbox, "NOTIFY_EVERY", 3600.0)
        keep(t, event("first"))  # notifies (nothing notified for this tenant yet)
        assert wait_until(lambda: count(t, InboundEvent) == 1)
        keep(t, event("second"))  # within NOTIFY_EVERY: no notification of its own
        assert wait_until(lambda: count(t, InboundEvent) == 2)
        assert count(t, RawDelivery) == 0
    finally:
        running.stop()


def test_the_jobs_of_a_kept_delivery_wait_for_their_turn_under_the_request_that_kept_it(tenant):
    """The processor runs apart from the request that kept the delivery: the request id travels with the raw row,
    so the job's turn (and every log line of its run) names the webhook's request, not none."""
    token = request_id_var.set("req-kept-1")
    try:
        keep(tenant, event("rq-1"))
    finally:
        request_id_var.reset(token)
    assert process(tenant) == 1
    with tenant_context(tenant.ref), tenant_session() as session:
        job_id = str(session.scalars(select(Job.id)).one())
        entries = redis_client().lrange(f"{fair_queue._prefix()}:jobs", 0, -1)
    assert [entry.decode() for entry in entries] == [f"{tenant.ref.slug} {job_id} req-kept-1"]
