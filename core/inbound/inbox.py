"""The inbox of events: each event once (by provider event id), with the jobs it starts and their outbox messages.
Webhook events reach it through the raw inbox (kept before the 2xx, fanned out by core.inbound.processor),
polled records directly (core.inbound.polling); `add_events` is the one place an event row is created."""
from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import bindparam, exists, literal, or_, select, true

from core.connections.models import Connection
from core.connections.store import PAUSED
from core.events import catalogue, recorder
from core.inbound.models import InboundEvent
from core.inbound.raw_inbox import kept_headers
from core.jobs import creation
from core.jobs.creation import RUN_JOB
from core.platform import metrics, outbox
from core.platform.actors import Actor
from core.platform.errors import NotFound
from core.platform.ids import get_by_id, parse_uuid
from core.platform.models import OutboxMessage
from core.platform.pages import matching, newest_first
from core.platform.sqlcache import insert_or_skip
from core.workflows.models import WorkflowSetting
from core.workflows.registry import WORKFLOWS
from tenancy.db import tenant_session, tenant_transaction



class EventNotFound(NotFound):
    code = "event-not-found"


@dataclass(frozen=True)
class Recorded:
    id: uuid.UUID
    duplicate: bool


def _connection_paused(connection_id):
    """True in SQL when the event's connection is paused (core.connections.store): its events start nothing. Part
    of the query that reads the enabled workflows, so it costs no round trip of its own."""
    conns = Connection.__table__
    return exists().where(conns.c.id == bindparam("connection_id", connection_id, type_=conns.c.id.type),
                          conns.c.status == PAUSED)


def _start_workflows(session, *, event_id, provider: str | None, connection_id, event_type: str, payload,
                     created_by: str) -> list[tuple]:
    """Add a job (and its outbox message) for each enabled workflow this event starts: its trigger names the
    event's provider and type, its source connection (when bound) is the event's connection, and its own
    `matches` (when it has one) agrees."""
    rows = session.scalars(select(WorkflowSetting).where(WorkflowSetting.enabled.is_(True),
                                                         ~_connection_paused(connection_id)))
    workflows = [w.name for w in rows if _starts(w, provider, connection_id, event_type, payload)]
    return creation.add_jobs(session, workflows=workflows, data={"event": payload}, created_by=created_by,
                             event_id=event_id)


def _starts(setting: WorkflowSetting, provider, connection_id, event_type: str, payload) -> bool:
    module = WORKFLOWS.get(setting.name)
    trigger = getattr(module, "TRIGGER", None)
    if module is None or trigger is None:
        return False
    if trigger["provider"] == "*":  # echo: the tenant chooses the event types
        return "*" in setting.event_types or event_type in setting.event_types
    if provider != trigger["provider"] or event_type not in trigger["event_types"]:
        return False
    source = (setting.connections or {}).get("source")
    if source is not None and connection_id is not None and str(source) != str(connection_id):
        return False
    matches = getattr(module, "matches", None)
    return matches is None or bool(matches(setting, event_type, payload if isinstance(payload, dict) else {}))


def _event_statement():
    """Insert one event, unless it is a duplicate or its connection is gone, with the jobs it starts (given as
    arrays: ids, workflows) and their outbox messages (core.jobs.creation), in one statement. Answers no row for
    an event not inserted, else one row per job (one row with no job when it starts none). Built once (named
    parameters), so SQLAlchemy compiles it once per schema."""
    events, conns = InboundEvent.__table__, Connection.__table__
    columns = ("id", "connection_id", "provider", "provider_event_id", "event_type", "account_id", "resource_id",
               "occurred_at", "headers", "payload", "raw_body")
    values = select(*[bindparam(c, type_=events.c[c].type) for c in columns], literal("received"), literal(0))
    connection = bindparam("connection_id", type_=conns.c.id.type)
    live = exists().where(conns.c.id == connection, conns.c.deleted_at.is_(None))
    inserted = (insert_or_skip(events).from_select([*columns, "status", "replays"],
                                                   values.where(or_(connection.is_(None), live)))
                .returning(events.c.id).cte("inserted"))
    rows = creation.starts()
    _, messages = creation.queue_ctes(rows, inserted.c.id, select_from=inserted.join(rows, true()))
    webhooks = recorder.recording(catalogue.EVENT_RECEIVED, recorder.json_object(
        event_id=inserted.c.id, provider=values.selected_columns[2], event_type=values.selected_columns[4],
        connection_id=connection), source=inserted, connection_id=connection)
    return (select(inserted.c.id.label("event_id"), messages.c.id.label("outbox_id"), messages.c.args,
                   recorder.outbox_rows(webhooks).label("webhooks"))
            .select_from(inserted.outerjoin(messages, true())))


_EVENT_STATEMENT = _event_statement()
_ENABLED_WORKFLOWS = select(WorkflowSetting.__table__).where(WorkflowSetting.__table__.c.enabled.is_(True))
_ENABLED_UNLESS_PAUSED = _ENABLED_WORKFLOWS.where(~_connection_paused(None))  # for one connection, one statement
_PAUSED_CONNECTIONS = select(Connection.__table__.c.id).where(Connection.__table__.c.status == PAUSED)


@dataclass(frozen=True)
class WorkflowsInForce:
    """The tenant's enabled workflow settings (rows) and its paused connections, read once for a batch of
    deliveries: a paused connection's events are kept but start nothing."""
    enabled: list
    paused: frozenset

    def for_connection(self, connection_id) -> list:
        return [] if connection_id in self.paused else self.enabled


def workflows_in_force(connection) -> WorkflowsInForce:
    return WorkflowsInForce(connection.execute(_ENABLED_WORKFLOWS).all(),
                            frozenset(connection.scalars(_PAUSED_CONNECTIONS)))


def add_events(connection, *, provider: str, connection_id, events, headers: dict, raw_body: bytes | None,
               workflows: WorkflowsInForce | None = None):
    """With the caller's Core connection or ORM session (autocommit, or a transaction the caller commits):
    insert the new events and their jobs; return the results and the outbox messages to publish after the
    commit. An event whose connection was deleted meanwhile is dropped (no result): routing caches may be a
    moment behind, the tenant's own rows never are. `workflows`: `workflows_in_force`, when the caller already
    read them in this transaction (a batch of deliveries reads them once); otherwise one statement reads the
    enabled workflows unless the event's connection is paused."""
    kept = kept_headers(headers)
    if not events:
        settings = []
    elif workflows is not None:
        settings = workflows.for_connection(connection_id)
    else:
        settings = connection.execute(_ENABLED_UNLESS_PAUSED, {"connection_id": connection_id}).all()
    results, messages = [], []
    for event in events:
        started = [w for w in settings if _starts(w, provider, connection_id, event.event_type, event.payload)]
        rows = connection.execute(_EVENT_STATEMENT, {
            "id": uuid.uuid4(), "connection_id": connection_id, "provider": provider,
            "provider_event_id": event.event_id, "event_type": event.event_type, "account_id": event.account_id,
            "resource_id": event.resource_id, "occurred_at": event.occurred_at, "headers": kept,
            "payload": event.payload, "raw_body": raw_body, "job_ids": [uuid.uuid4() for _ in started],
            "workflows": [w.name for w in started], "input": {"event": event.payload},
            "created_by": f"webhook:{provider}"}).all()
        if not rows:
            existing = connection.scalar(select(InboundEvent.id).where(
                InboundEvent.provider == provider, InboundEvent.provider_event_id == event.event_id))
            if existing is not None:
                results.append(Recorded(existing, True))
            continue
        messages += recorder.messages(rows[0].webhooks)
        for row in rows:
            if row.outbox_id is not None:
                messages.append(OutboxMessage(id=row.outbox_id, task=RUN_JOB, args=row.args, countdown=0.0))
        for w in started:
            metrics.jobs_queued.labels(w.name).inc()
        results.append(Recorded(rows[0].event_id, False))
    return results, messages


def _parse(event_id) -> uuid.UUID:
    return parse_uuid(event_id, EventNotFound, f"no event {event_id}")


def get_event(event_id) -> InboundEvent:
    return get_by_id(InboundEvent, event_id, EventNotFound, f"no event {event_id}")


def list_events(*, limit: int, before: list | None = None, provider=None, status=None, event_type=None):
    query = matching(select(InboundEvent), (InboundEvent.provider, provider), (InboundEvent.status, status),
                     (InboundEvent.event_type, event_type))
    query = newest_first(query, InboundEvent.received_at, InboundEvent.id, limit=limit, before=before)
    with tenant_session() as session:
        return list(session.scalars(query))


def replay_event(event_id, *, actor: Actor) -> list:
    """Start the event's workflows again (new jobs); the event keeps its identity."""
    with tenant_transaction() as session:
        event = session.get(InboundEvent, _parse(event_id), with_for_update=True)
        if event is None:
            raise EventNotFound(f"no event {event_id}")
        started = _start_workflows(session, event_id=event.id, provider=event.provider,
                                   connection_id=event.connection_id, event_type=event.event_type,
                                   payload=event.payload, created_by=f"{actor.type}:{actor.id}")
        event.replays += 1
        event.status = "received"
        session.flush()
    outbox.publish([message for _, message in started])
    return [job for job, _ in started]
