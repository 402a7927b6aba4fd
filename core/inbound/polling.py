"""Polling workflows (systems without webhooks): a schedule per tenant and workflow, spread with jitter, and
cursors that only move in the transaction that stores what was read."""
from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from connectors.base import WebhookEvent
from core.connections.models import Connection
from core.connections.store import PAUSED
from core.inbound import inbox
from core.inbound.models import PollCursor
from core.jobs import creation
from core.platform import outbox
from core.workflows.models import WorkflowSetting
from core.workflows.registry import WORKFLOWS
from core.workflows.schedule import next_run
from tenancy.db import tenant_session, tenant_transaction


def get_cursor(workflow: str, connection_id) -> str | None:
    with tenant_session() as session:
        row = session.get(PollCursor, (workflow, uuid.UUID(str(connection_id))))
    return row.cursor if row else None


def record_polled(*, workflow: str, connection_id, provider: str, event_type: str, records: list[dict],
                  cursor_of, previous: str) -> dict:
    """Store the records as events and move the cursor to the newest one, in one transaction."""
    conn_id = uuid.UUID(str(connection_id))
    events = [WebhookEvent(event_id=f"{r['Id']}@{cursor_of(r)}", event_type=event_type, account_id=None,
                           resource_id=str(r["Id"]), occurred_at=cursor_of(r), payload=r) for r in records]
    cursor = max([previous, *(cursor_of(r) for r in records)], key=_stamp)
    with tenant_transaction() as session:
        results, messages = inbox.add_events(session, provider=provider, connection_id=conn_id, events=events,
                                             headers={}, raw_body=None)
        session.execute(insert(PollCursor).values(workflow=workflow, connection_id=conn_id, cursor=cursor)
                        .on_conflict_do_update(index_elements=[PollCursor.workflow, PollCursor.connection_id],
                                               set_={"cursor": cursor, "updated_at": datetime.now(UTC)}))
    outbox.publish(messages)
    return {"new": sum(1 for r in results if not r.duplicate), "cursor": cursor}


def _stamp(value: str) -> datetime:
    text = value.replace("Z", "+00:00")
    if len(text) > 5 and text[-5] in "+-" and text[-3] != ":":
        text = text[:-2] + ":" + text[-2:]
    return datetime.fromisoformat(text)


def schedule_due() -> int:
    """In the current tenant: start a job for each enabled scheduled workflow whose time has come."""
    now = datetime.now(UTC)
    messages = []
    with tenant_transaction() as session:
        due = session.scalars(select(WorkflowSetting).where(
            WorkflowSetting.enabled.is_(True), WorkflowSetting.schedule_seconds.isnot(None),
            WorkflowSetting.next_run_at <= now).with_for_update(skip_locked=True))
        paused = None
        for setting in due:
            if setting.name not in WORKFLOWS or getattr(WORKFLOWS[setting.name], "TRIGGER", True) is not None:
                continue
            if paused is None:
                paused = {str(c) for c in session.scalars(select(Connection.id).where(Connection.status == PAUSED))}
            if paused & {str(c) for c in (setting.connections or {}).values()}:  # skipped while its link is paused
                setting.next_run_at = next_run(setting.schedule_seconds)
                continue
            [(_, message)] = creation.add_jobs(session, workflows=[setting.name],
                                               data={"scheduled_at": now.isoformat()}, created_by="schedule")
            messages.append(message)
            setting.next_run_at = next_run(setting.schedule_seconds)
    outbox.publish(messages)
    return len(messages)
