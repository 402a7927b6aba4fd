"""Managing a tenant's subscriptions (the public surface the API calls): create (the secret shown once), read,
change, delete, rotate the secret, read the attempt log, replay, send a test event.

Invariants: a subscription's URL passed the SSRF guard when it was set (and is checked again at every send);
a tenant never has more live subscriptions than its plan allows (counted under a per-tenant transaction lock);
every change is audited; nothing here sends anything itself — deliveries go through the outbox to workers.
"""
from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import func, select, update

from connectors.destinations import DestinationPolicy, check_host, validate_url
from connectors.errors import UnsafeAddress
from core.connections.models import Connection
from core.events import catalogue, sealing
from core.events.models import DELIVERED, FAILED, PENDING, Subscription, SubscriptionAttempt, SubscriptionMessage
from core.events.recorder import DELIVER_WEBHOOK
from core.platform import audit, outbox
from core.platform.actors import Actor
from core.platform.errors import Conflict, Invalid, NotFound
from core.platform.ids import parse_uuid
from core.platform.pages import matching, newest_first
from core.platform.runtime import settings
from core.subscriptions import signing
from core.tenants.plans import describe_current_tenant
from core.workflows.registry import WORKFLOWS
from tenancy.context import tenant_key
from tenancy.db import tenant_session, tenant_transaction

REPLAY_WEBHOOKS = "zixly.tenant.replay_webhooks"
REPLAY_LIMIT = 10_000  # messages one replay request may select
FIELDS = ("url", "description", "event_types", "workflows", "connection_ids", "enabled")


class SubscriptionNotFound(NotFound):
    code = "subscription-not-found"


class MessageNotFound(NotFound):
    code = "message-not-found"


class InvalidSubscription(Invalid):
    code = "invalid-subscription"


class UnsafeSubscriptionUrl(InvalidSubscription):
    """The URL is not one Zixly may call: its scheme under this deployment's rules, or where it resolves."""

    code = "unsafe-subscription-url"


class UnknownConnection(InvalidSubscription):
    code = "unknown-connection"


class SubscriptionLimitReached(Conflict):
    code = "subscription-limit-reached"


class SubscriptionDisabled(Conflict):
    code = "subscription-disabled"


def policy() -> DestinationPolicy:
    config = settings()
    return DestinationPolicy(allow_loopback_http=config.subscription_allow_loopback_http,
                             connect_timeout=config.subscription_connect_timeout,
                             read_timeout=config.subscription_timeout)


def _check(session, values: dict) -> dict:
    if "url" in values:
        rules = policy()
        try:
            values["url"] = validate_url(values["url"], rules)
            check_host(urlsplit(values["url"]).hostname or "", rules)
        except UnsafeAddress as exc:
            raise UnsafeSubscriptionUrl("; ".join(f"{k}: {v}" for k, v in exc.errors.items())) from None
    if "event_types" in values:
        unknown = sorted(set(values["event_types"]) - set(catalogue.EVENT_TYPES))
        if unknown or not values["event_types"]:
            raise InvalidSubscription(f"event_types: unknown {', '.join(unknown) or '(none given)'}; known: "
                                      f"{', '.join(catalogue.EVENT_TYPES)}")
        values["event_types"] = sorted(set(values["event_types"]))
    if "workflows" in values:
        unknown = sorted(set(values["workflows"]) - set(WORKFLOWS))
        if unknown:
            raise InvalidSubscription(f"workflows: unknown {', '.join(unknown)}")
        values["workflows"] = sorted(set(values["workflows"]))
    if "connection_ids" in values:
        wanted = {uuid.UUID(str(c)) for c in values["connection_ids"]}
        found = set(session.scalars(select(Connection.id).where(Connection.id.in_(wanted),
                                                                Connection.deleted_at.is_(None)))) if wanted else set()
        if wanted - found:
            raise UnknownConnection(f"connection_ids: no connection {', '.join(sorted(map(str, wanted - found)))}")
        values["connection_ids"] = sorted(wanted, key=str)
    return values


def _lock_tenant(session) -> None:
    """Serialise this tenant's subscription creations (the plan limit is counted, then a row added)."""
    session.execute(select(func.pg_advisory_xact_lock(func.hashtext(tenant_key("subscriptions")))))


def create_subscription(*, actor: Actor, url: str, event_types: list[str], description: str = "",
                        workflows: list[str] | None = None, connection_ids: list | None = None,
                        enabled: bool = True) -> tuple[Subscription, str]:
    """A new subscription and its secret (returned here only: stored sealed, never shown again)."""
    limit = describe_current_tenant()["limits"]["max_subscriptions"]  # catalog first, not inside the transaction
    secret = signing.new_secret()
    with tenant_transaction() as session:
        values = _check(session, {"url": url, "event_types": event_types, "workflows": workflows or [],
                                  "connection_ids": connection_ids or []})
        _lock_tenant(session)
        live = session.scalar(select(func.count()).select_from(Subscription).where(Subscription.deleted_at.is_(None)))
        if live >= limit:
            raise SubscriptionLimitReached(f"the plan allows {limit} subscriptions; delete one first")
        ident = uuid.uuid4()
        row = Subscription(id=ident, description=description, enabled=enabled,
                           secrets_sealed=sealing.seal(ident, signing.first_secrets(secret)), **values)
        session.add(row)
        audit.record(session, actor=actor, action="subscription.created", target_type="subscription",
                     target_id=str(ident), details={"event_types": values["event_types"]})
        session.flush()
    return row, secret


def parse_subscription_id(value) -> uuid.UUID:
    return parse_uuid(value, SubscriptionNotFound, f"no subscription {value}")


def _live(session, subscription_id, *, lock: bool = False) -> Subscription:
    ident = parse_subscription_id(subscription_id)
    row = session.get(Subscription, ident, with_for_update=lock)
    if row is None or row.deleted_at is not None:
        raise SubscriptionNotFound(f"no subscription {subscription_id}")
    return row


def get_subscription(subscription_id) -> Subscription:
    with tenant_session() as session:
        return _live(session, subscription_id)


def list_subscriptions(*, limit: int, before: tuple | None = None, enabled: bool | None = None,
                       event_type: str | None = None) -> list[Subscription]:
    query = matching(select(Subscription).where(Subscription.deleted_at.is_(None)), (Subscription.enabled, enabled))
    if event_type is not None:
        query = query.where(Subscription.event_types.contains([event_type]))
    query = newest_first(query, Subscription.created_at, Subscription.id, limit=limit, before=before)
    with tenant_session() as session:
        return list(session.scalars(query))


def update_subscription(subscription_id, *, actor: Actor, recover: bool = False, **changes) -> Subscription:
    """Change the fields given. Enabling a subscription Zixly disabled clears its failure record and answers, as
    `recovery`, what failed since it started failing; with `recover`, those messages are replayed (in creation
    order) at once."""
    changes = {k: v for k, v in changes.items() if k in FIELDS}
    recovery = None
    with tenant_transaction() as session:
        row = _live(session, subscription_id, lock=True)
        changes = _check(session, changes)
        was_enabled = row.enabled
        if changes.get("enabled") is True and not was_enabled:
            recovery = _recoverable(session, row)
            row.disabled_reason = row.disabled_at = row.failing_since = None
            row.consecutive_failures = 0
        elif changes.get("enabled") is False and was_enabled:
            row.disabled_reason, row.disabled_at = None, datetime.now(UTC)  # by a person: nothing more is recorded
        for key, value in changes.items():
            setattr(row, key, value)
        audit.record(session, actor=actor, action="subscription.updated", target_type="subscription",
                     target_id=str(row.id), details={"fields": sorted(changes)})
    if recover and recovery and recovery["since"] is not None:
        recovery["replayed"] = replay(row.id, actor=actor, since=recovery["since"])
    row = get_subscription(row.id)
    row.recovery = recovery  # transient: shown in this answer only
    return row


def _recoverable(session, subscription: Subscription) -> dict:
    since = subscription.failing_since or subscription.disabled_at
    if since is None:
        return {"since": None, "failed_messages": 0, "replayed": 0}
    # what ended failed since then (a message created earlier may have failed its last attempts since)
    count, first = session.execute(select(func.count(), func.min(SubscriptionMessage.created_at)).where(
        SubscriptionMessage.subscription_id == subscription.id, SubscriptionMessage.status == FAILED,
        SubscriptionMessage.updated_at >= since)).one()
    return {"since": first or since, "failed_messages": count, "replayed": 0}


def delete_subscription(subscription_id, *, actor: Actor) -> None:
    """Soft delete: nothing more is recorded or sent for it; its log stays until the tenant is archived."""
    with tenant_transaction() as session:
        row = _live(session, subscription_id, lock=True)
        row.deleted_at, row.enabled = datetime.now(UTC), False
        audit.record(session, actor=actor, action="subscription.deleted", target_type="subscription",
                     target_id=str(row.id))


def rotate_secret(subscription_id, *, actor: Actor) -> tuple[Subscription, str, datetime]:
    """A new secret signs from now on; the previous ones keep signing for the grace period (both signatures
    sent), so a receiver can switch without missing a delivery. Answers the new secret (shown once)."""
    grace = timedelta(seconds=settings().subscription_secret_grace_seconds)
    secret = signing.new_secret()
    with tenant_transaction() as session:
        row = _live(session, subscription_id, lock=True)
        items = signing.rotated(sealing.open_secrets(row.id, row.secrets_sealed), secret, grace=grace)
        row.secrets_sealed = sealing.seal(row.id, items)
        audit.record(session, actor=actor, action="subscription.secret_rotated", target_type="subscription",
                     target_id=str(row.id))
    return row, secret, datetime.now(UTC) + grace


def list_attempts(subscription_id, *, limit: int, before: tuple | None = None, outcome=None,
                  message_id=None) -> list[SubscriptionAttempt]:
    with tenant_session() as session:
        sub = _live(session, subscription_id)
        query = matching(select(SubscriptionAttempt).where(SubscriptionAttempt.subscription_id == sub.id),
                         (SubscriptionAttempt.outcome, outcome), (SubscriptionAttempt.message_id, message_id))
        query = newest_first(query, SubscriptionAttempt.attempted_at, SubscriptionAttempt.id, limit=limit,
                             before=before)
        return list(session.scalars(query))


def replay(subscription_id, *, actor: Actor, message_id=None, since: datetime | None = None,
           until: datetime | None = None) -> int:
    """Send again one message (whatever its status), or every message that failed since `since`; delivered one
    after another in creation order by one task. Answers how many."""
    with tenant_transaction() as session:
        sub = _live(session, subscription_id, lock=True)
        if not sub.enabled:
            raise SubscriptionDisabled("enable the subscription first (PATCH enabled=true), then replay")
        query = select(SubscriptionMessage.id).where(SubscriptionMessage.subscription_id == sub.id)
        if message_id is not None:
            ident = parse_uuid(message_id, MessageNotFound, f"no message {message_id}")
            query = query.where(SubscriptionMessage.id == ident, SubscriptionMessage.status.in_((FAILED, DELIVERED)))
        else:
            query = query.where(SubscriptionMessage.status == FAILED, SubscriptionMessage.created_at >= since)
            if until is not None:
                query = query.where(SubscriptionMessage.created_at < until)
        ids = list(session.scalars(query.order_by(SubscriptionMessage.seq).limit(REPLAY_LIMIT)
                                   .with_for_update(skip_locked=True)))
        if message_id is not None and not ids:
            raise MessageNotFound(f"no delivered or failed message {message_id} of this subscription")
        if ids:
            session.execute(update(SubscriptionMessage).where(SubscriptionMessage.id.in_(ids)).values(
                status=PENDING, attempts=0, replays=SubscriptionMessage.replays + 1, next_attempt_at=func.now(),
                lease_until=None, updated_at=func.now()))
            message = outbox.enqueue(session, REPLAY_WEBHOOKS, [str(i) for i in ids])
        audit.record(session, actor=actor, action="subscription.replayed", target_type="subscription",
                     target_id=str(sub.id), details={"messages": len(ids), "message_id": str(message_id or ""),
                                                     "since": since.isoformat() if since else None})
    if ids:
        outbox.publish([message])
    return len(ids)


def send_test(subscription_id, *, actor: Actor) -> SubscriptionMessage:
    """Queue a `subscription.test` message to this subscription alone (signed like any other)."""
    with tenant_transaction() as session:
        sub = _live(session, subscription_id)
        if not sub.enabled:
            raise SubscriptionDisabled("enable the subscription first (PATCH enabled=true)")
        row = SubscriptionMessage(subscription_id=sub.id, event_type=catalogue.TEST, data={
            "subscription_id": str(sub.id), "message": "A test event from Zixly: your endpoint verified it."})
        session.add(row)
        session.flush()
        message = outbox.enqueue(session, DELIVER_WEBHOOK, str(row.id))
        audit.record(session, actor=actor, action="subscription.tested", target_type="subscription",
                     target_id=str(sub.id))
    outbox.publish([message])
    return row


def get_message(subscription_id, message_id) -> SubscriptionMessage:
    with tenant_session() as session:
        sub = _live(session, subscription_id)
        row = session.get(SubscriptionMessage, parse_uuid(message_id, MessageNotFound, f"no message {message_id}"))
    if row is None or row.subscription_id != sub.id:
        raise MessageNotFound(f"no message {message_id}")
    return row

