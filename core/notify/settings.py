"""Notification preferences: per event type, whether it notifies and whom — the tenant's admins (a per-tenant
Novu topic), named users, and extra per-tenant topics. An event without a stored row uses DEFAULT."""
from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert

from core.notify.models import NotificationSetting
from core.platform import audit
from core.platform.actors import Actor
from core.platform.errors import Invalid
from notifications import novu
from tenancy.db import catalog_session, tenant_session, tenant_transaction
from tenancy.models import Tenant

# tenant-welcome is not here: it goes to the admin contact given at tenant creation, before settings can exist.
EVENTS = ("job-failed", "delivery-dead-lettered", "connection-reauth-required", "api-key-created",
          "subscription-disabled")
DEFAULT = {"enabled": True, "admins": True, "users": [], "topics": []}
ADMINS_TOPIC = "admins"


class UnknownNotificationEvent(Invalid):
    code = "unknown-notification-event"


def _as_dict(row: NotificationSetting | None) -> dict:
    if row is None:
        return {key: (list(value) if isinstance(value, list) else value) for key, value in DEFAULT.items()}
    return {"enabled": row.enabled, "admins": row.admins, "users": list(row.users), "topics": list(row.topics)}


def get_settings() -> dict[str, dict]:
    with tenant_session() as session:
        rows = {row.event: row for row in session.scalars(select(NotificationSetting))}
    return {event: _as_dict(rows.get(event)) for event in EVENTS}


def update_settings(changes: dict[str, dict], *, actor: Actor) -> dict[str, dict]:
    """Replace the settings of each event named in `changes`; events not named keep theirs."""
    unknown = sorted(set(changes) - set(EVENTS))
    if unknown:
        raise UnknownNotificationEvent(f"unknown event(s) {', '.join(unknown)}; known: {', '.join(EVENTS)}")
    with tenant_transaction() as session:
        for event, setting in changes.items():
            values = {**DEFAULT, **setting}
            session.execute(insert(NotificationSetting).values(event=event, **values).on_conflict_do_update(
                index_elements=[NotificationSetting.event], set_={**values, "updated_at": func.now()}))
        audit.record(session, actor=actor, action="notification_settings.updated",
                     target_type="notification_settings", details={"events": sorted(changes)})
    return get_settings()


def admin_email(slug: str) -> str | None:
    """The admin named at sign-up (catalog). Read before the tenant transaction that records a notification, never
    inside it: one request holding two server connections at once can starve a small pool (PgBouncer's)."""
    with catalog_session() as session:
        return session.scalar(select(Tenant.admin_email).where(Tenant.slug == slug))


def recipients(session, *, event: str, tenant: str, admin_email: str | None) -> tuple[list[dict], str | None]:
    """Novu's `to` for an event under the tenant's settings (`admin_email`: the tenant's, from `admin_email()`),
    or an empty list and why nobody is told."""
    setting = _as_dict(session.get(NotificationSetting, event))
    if not setting["enabled"]:
        return [], "disabled in notification settings"
    to = [novu.topic(tenant, ADMINS_TOPIC)] if setting["admins"] else []
    if setting["admins"]:  # the admin named at sign-up is told directly too: nothing else manages topic members yet
        if admin_email:
            to.append(novu.subscriber(tenant, admin_email.lower(), email=admin_email))
    to += [novu.topic(tenant, key) for key in setting["topics"]]
    to += [novu.subscriber(tenant, user["id"], email=user.get("email"), name=user.get("name"))
           for user in setting["users"]]
    to = list({repr(sorted(r.items())): r for r in to}.values())  # the admins topic named twice is told once
    return to, None if to else "no recipients in notification settings"
