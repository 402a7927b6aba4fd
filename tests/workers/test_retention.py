"""Per-plan retention: finished rows older than the plan keeps them are deleted in batches and counted; what is
unfinished, recent, or still pointed at stays, and one tenant's retention never touches another's rows."""
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

import workers.maintenance  # noqa: F401  (registers the tasks)
from core.connections import store
from core.inbound.models import InboundEvent
from core.jobs.models import Job, JobStep
from core.lifecycle import retention
from core.notify.models import Notification
from core.outbound.models import Delivery
from core.platform import metrics
from core.platform.queue import celery_app
from core.tenants import plans
from tenancy.context import tenant_context
from tenancy.db import catalog_transaction, tenant_session, tenant_transaction
from tenancy.models import Plan

OLD, RECENT = timedelta(days=40), timedelta(days=5)


@pytest.fixture()
def month_plan(app, monkeypatch):
    name = f"r-{uuid.uuid4().hex[:12]}"
    with catalog_transaction() as session:
        session.add(Plan(name=name, requests_per_minute=600, key_requests_per_minute=600,
                         webhook_requests_per_minute=600, retention_days=30))
    monkeypatch.setattr(plans, "_loaded", 0.0)
    return name


def aged(session, model, age: timedelta, column="updated_at", **values):
    row = model(**values)
    session.add(row)
    session.flush()
    session.execute(update(model).where(model.id == row.id).values({column: func.now() - age}))
    return row.id


def event(session, age, n):
    return aged(session, InboundEvent, age, column="received_at", provider="custom", provider_event_id=f"e{n}",
                event_type="ping", payload={"n": n}, raw_body=b'{"secret": "body"}', status="processed")


def seed(t) -> dict:
    with tenant_context(t.ref):
        conn, _ = store.create_connection(provider="custom")
        with tenant_transaction() as s:
            ids = {"old_event_of_old_job": event(s, OLD, 1), "old_event": event(s, OLD, 2),
                   "recent_event": event(s, RECENT, 3), "old_event_of_queued_job": event(s, OLD, 4)}
            ids["old_job"] = aged(s, Job, OLD, workflow="echo", input={}, status="COMPLETED",
                                  event_id=ids["old_event_of_old_job"])
            s.add_all([JobStep(job_id=ids["old_job"], attempt=1, name=f"s{i}", status="done") for i in range(2)])
            ids["old_failed_job"] = aged(s, Job, OLD, workflow="echo", input={}, status="FAILED")
            ids["recent_job"] = aged(s, Job, RECENT, workflow="echo", input={}, status="COMPLETED")
            ids["old_queued_job"] = aged(s, Job, OLD, workflow="echo", input={}, status="QUEUED",
                                         event_id=ids["old_event_of_queued_job"])
            s.add(JobStep(job_id=ids["recent_job"], attempt=1, name="kept", status="done"))
            for name, status, age in (("old_delivery", "delivered", OLD), ("old_queued_delivery", "queued", OLD),
                                      ("recent_delivery", "dead", RECENT)):
                ids[name] = aged(s, Delivery, age, provider="custom", connection_id=conn.id, record_key="r",
                                 operation="op", dedup_key=uuid.uuid4().hex, status=status, job_id=ids["old_job"])
            for name, status, age in (("old_notice", "sent", OLD), ("old_queued_notice", "queued", OLD),
                                      ("recent_notice", "skipped", RECENT)):
                ids[name] = aged(s, Notification, age, event="job.failed", subject="x", status=status,
                                 transaction_id=uuid.uuid4().hex, request={})
    return ids


def present(t, ids) -> set[str]:
    with tenant_context(t.ref), tenant_session() as s:
        found = set()
        for model in (InboundEvent, Job, Delivery, Notification):
            found |= {str(i) for i in s.scalars(select(model.id).where(model.id.in_(list(ids.values()))))}
        return {name for name, value in ids.items() if str(value) in found}


def steps(t) -> set[str]:
    with tenant_context(t.ref), tenant_session() as s:
        return set(s.scalars(select(JobStep.name)))


def test_retention_deletes_what_is_finished_and_older_than_the_plan_keeps_only(make_tenant, month_plan):
    a, b = make_tenant("keep", plan=month_plan), make_tenant("keepb", plan=month_plan)
    ids, other = seed(a), seed(b)
    before = {kind: metrics.retention_deleted.labels(kind)._value.get() for kind in retention.KINDS}
    with tenant_context(a.ref):
        deleted = retention.enforce_retention(batch=1)  # one row per statement: batches until done
    assert deleted == {"deliveries": 1, "job_steps": 2, "jobs": 2, "events": 2, "notifications": 1}
    assert present(a, ids) == {"recent_event", "old_event_of_queued_job", "recent_job", "old_queued_job",
                               "old_queued_delivery", "recent_delivery", "old_queued_notice", "recent_notice"}
    assert steps(a) == {"kept"}
    assert {kind: metrics.retention_deleted.labels(kind)._value.get() - before[kind]
            for kind in retention.KINDS} == deleted
    assert present(b, other) == set(other) and steps(b) == {"s0", "s1", "kept"}  # b's rows are b's retention's
    with tenant_context(a.ref):
        assert set(retention.enforce_retention().values()) == {0}  # nothing left to delete


def test_beat_enforces_retention_for_every_tenant():
    schedule = celery_app.conf.beat_schedule
    assert "zixly.fleet.enforce_retention" in {entry["task"] for entry in schedule.values()}
    assert {"zixly.fleet.enforce_retention", "zixly.tenant.enforce_retention"} <= set(celery_app.tasks)
