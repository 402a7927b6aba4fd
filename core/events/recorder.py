"""Recording an event: in the producer's own transaction, one message per matching subscription and one outbox
message per delivery (core.platform.outbox), in one statement; published after commit, else by the outbox relay.

So an event exists exactly when the change that caused it committed: a rolled-back job outcome records nothing,
and a committed one cannot lose its event. Matching reads the subscriptions in the same snapshot: a subscription
hears the events committed after it was. With no subscription to the type the statement writes nothing.

Two shapes, one SQL: `record(session, …)` for producers with an ORM transaction (publishing hooked to its
commit), and `recording(…, source=cte)` for producers whose change is itself one statement (its CTE's rows each
make an event), with `outbox_rows` / `messages` to publish what that statement returned.
"""
from __future__ import annotations

import json
import uuid

from sqlalchemy import String, any_, bindparam, case, cast, event, func, literal, literal_column, or_, select, true
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.sql.elements import ColumnElement

from core.events.models import FAILED, PENDING, Subscription, SubscriptionMessage
from core.platform import outbox
from core.platform.models import OutboxMessage

DELIVER_WEBHOOK = "zixly.tenant.deliver_webhook"
DISABLED_ERROR = "not sent: the subscription was disabled after sustained failures (replay to recover)"


def recording(event_type: str, data: ColumnElement, *, source=None, workflow=None, connection_id=None):
    """The CTE that records `event_type` (the `data` jsonb expression, over `source`'s columns when given) for
    every live subscription that hears it, answering the outbox rows (id, args) to publish."""
    subs, messages, box = Subscription.__table__, SubscriptionMessage.__table__, OutboxMessage.__table__
    kind = literal(event_type, String)
    # an endpoint Zixly disabled (it kept failing) still gets its messages, as failed: recoverable once re-enabled
    status = case((subs.c.enabled.is_(True), literal(PENDING)), else_=literal(FAILED))
    error = case((subs.c.enabled.is_(True), literal(None, String)), else_=literal(DISABLED_ERROR))
    matched = select(subs.c.id, kind, data, status, error).where(
        or_(subs.c.enabled.is_(True), subs.c.disabled_reason.is_not(None)), subs.c.deleted_at.is_(None),
        subs.c.event_types.contains([event_type]),
        or_(func.cardinality(subs.c.workflows) == 0, _equals_any(workflow, subs.c.workflows)),
        or_(func.cardinality(subs.c.connection_ids) == 0, _equals_any(connection_id, subs.c.connection_ids)))
    if source is not None:
        matched = matched.select_from(source.join(subs, true()))
    inserted = (insert(messages).from_select(["subscription_id", "event_type", "data", "status", "last_error"], matched)
                .returning(messages.c.id, messages.c.status).cte(f"webhook_messages_{event_type.replace('.', '_')}"))
    queued = select(literal(DELIVER_WEBHOOK), func.jsonb_build_array(cast(inserted.c.id, String)), literal(0.0))
    return (insert(box).from_select(["task", "args", "countdown"],
                                    queued.select_from(inserted).where(inserted.c.status == PENDING))
            .returning(box.c.id, box.c.args).cte(f"webhook_outbox_{event_type.replace('.', '_')}"))


def json_object(**members) -> ColumnElement:
    """`jsonb_build_object` of SQL expressions, keyed by the (code-given) argument names."""
    args = []
    for key, value in members.items():  # a text parameter is cast: jsonb_build_object cannot infer its type
        args += [literal_column(f"'{key}'"), cast(value, String) if isinstance(value.type, String) else value]
    return func.jsonb_build_object(*args)


def _equals_any(value, array):
    return literal(None, array.type.item_type) == any_(array) if value is None else value == any_(array)


def outbox_rows(recorded):
    """A scalar column answering the outbox rows a CTE (`recording`'s) wrote, as a jsonb list of [id, args]."""
    rows = func.jsonb_agg(func.jsonb_build_array(recorded.c.id, recorded.c.args), type_=JSONB)
    return select(func.coalesce(rows, cast("[]", JSONB), type_=JSONB)).scalar_subquery()


def messages(rows, *, countdown: float = 0.0) -> list[OutboxMessage]:
    """`outbox_rows`'s value as outbox messages to publish after the commit (its JSON text, where the statement
    left the column untyped for the driver)."""
    if isinstance(rows, str):
        rows = json.loads(rows)
    return [OutboxMessage(id=ident, task=DELIVER_WEBHOOK, args=args, countdown=countdown)
            for ident, args in rows or []]


def _statement_for(event_type: str):
    recorded = recording(event_type, bindparam("data", type_=JSONB),
                         workflow=bindparam("workflow", type_=String),
                         connection_id=bindparam("connection_id", type_=Subscription.__table__.c.id.type))
    return select(recorded.c.id, recorded.c.args)


_STATEMENTS: dict[str, object] = {}


def record(session, event_type: str, data: dict, *, workflow: str | None = None,
           connection_id: uuid.UUID | str | None = None) -> int:
    """Record `event_type` in `session`'s transaction; its deliveries are published when that transaction
    commits. Answers how many subscriptions hear it."""
    statement = _STATEMENTS.get(event_type)
    if statement is None:
        statement = _STATEMENTS.setdefault(event_type, _statement_for(event_type))
    connection = uuid.UUID(str(connection_id)) if connection_id is not None else None
    rows = session.execute(statement, {"data": data, "workflow": workflow, "connection_id": connection}).all()
    if rows:
        pending = session.info.setdefault("zixly_webhook_outbox", [])
        if not pending:
            event.listen(session, "after_commit", _publish_after_commit)
            event.listen(session, "after_rollback", _forget)
        pending.extend(OutboxMessage(id=ident, task=DELIVER_WEBHOOK, args=args, countdown=0.0)
                       for ident, args in rows)
    return len(rows)


def _publish_after_commit(session) -> None:
    outbox.publish(session.info.pop("zixly_webhook_outbox", []))


def _forget(session) -> None:
    session.info.pop("zixly_webhook_outbox", None)
