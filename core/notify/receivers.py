"""What each domain event notifies, and whom: one receiver per signal, each recording one notification.

Receivers run in the emitter's process right after its transaction committed; they only record (one tenant
transaction plus an outbox publish) and never call Novu, and `signals.emit` keeps their failures from the
emitter. The subject of each notification makes its transactionId: the same occurrence is recorded once.
`connect()` (called by core.bootstrap) attaches them; importing this module attaches nothing.
"""
from __future__ import annotations

import uuid
from datetime import UTC, datetime

from core.connections.models import Connection
from core.notify.service import notify
from core.platform import signals
from notifications import novu
from tenancy.context import tenant_context
from tenancy.db import tenant_session

ERROR_CHARS = 500


def on_job_failed(sender, *, tenant, job_id, workflow, error, attempts, failed_at, **extra):
    with tenant_context(tenant):
        notify(event="job-failed", subject=f"job:{job_id}:{failed_at.isoformat()}", payload={
            "job_id": str(job_id), "workflow": workflow, "error": (error or "")[:ERROR_CHARS],
            "attempts": attempts, "failed_at": failed_at.isoformat()})


def on_delivery_dead_lettered(sender, *, tenant, provider, message_id, reason, **extra):
    with tenant_context(tenant):
        notify(event="delivery-dead-lettered", subject=f"delivery:{message_id}", payload={
            "provider": provider, "message_id": str(message_id), "reason": (reason or "")[:ERROR_CHARS]})


def on_connection_reauth_required(sender, *, tenant, connection_id, reason, **extra):
    # At most one notice per connection per UTC day, however often the connection fails meanwhile.
    day = datetime.now(UTC).date().isoformat()
    with tenant_context(tenant):
        notify(event="connection-reauth-required", subject=f"connection:{connection_id}:{day}", payload={
            "connection_id": str(connection_id), "reason": (reason or "")[:ERROR_CHARS],
            **_connection_details(connection_id)})


def on_api_key_created(sender, *, tenant, key_id, name, role, prefix, created_by, **extra):
    with tenant_context(tenant):
        notify(event="api-key-created", subject=f"api-key:{key_id}", payload={
            "key_id": str(key_id), "name": name, "role": role, "prefix": prefix, "created_by": created_by})


def on_tenant_created(sender, *, tenant, name, admin_email, **extra):
    to = [novu.subscriber(tenant.slug, admin_email.lower(), email=admin_email)] if admin_email else []
    with tenant_context(tenant):
        notify(event="tenant-welcome", subject=f"tenant:{tenant.slug}", to=to, payload={
            "tenant_slug": tenant.slug, "tenant_name": name, "admin_email": admin_email})


def _connection_details(connection_id) -> dict:
    try:
        ident = uuid.UUID(str(connection_id))
    except ValueError:
        return {}
    with tenant_session() as session:
        conn = session.get(Connection, ident)
    return {} if conn is None else {"provider": conn.provider, "connection_name": conn.name}


RECEIVERS = {
    signals.job_failed: on_job_failed,
    signals.delivery_dead_lettered: on_delivery_dead_lettered,
    signals.connection_reauth_required: on_connection_reauth_required,
    signals.api_key_created: on_api_key_created,
    signals.tenant_created: on_tenant_created,
}


def connect() -> None:
    """Attach every receiver to its signal (idempotent: blinker keeps one connection per receiver)."""
    for signal, receiver in RECEIVERS.items():
        signal.connect(receiver)
