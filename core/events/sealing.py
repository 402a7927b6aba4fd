"""A subscription's signing secrets at rest: one JSON list sealed under the data keys, bound to the subscription's
id (a sealed value copied to another row does not open), and re-sealed under the primary key on rotation."""
from __future__ import annotations

import logging

from sqlalchemy import select

from core.events.models import Subscription
from core.platform import crypto
from tenancy.db import tenant_session, tenant_transaction

log = logging.getLogger("zixly.subscriptions")


def _context(subscription_id) -> str:
    return f"subscription:{subscription_id}:secrets"


def seal(subscription_id, items: list[dict]) -> str:
    return crypto.keyring().seal_json(items, _context(subscription_id))


def open_secrets(subscription_id, sealed: str) -> list[dict]:
    return crypto.keyring().open_json(sealed, _context(subscription_id))


def reseal_tenant_subscriptions() -> int:
    """Re-seal this tenant's subscription secrets not under the primary data key, each row under its own lock
    (deliveries keep signing throughout); answers the rows changed."""
    ring = crypto.keyring()
    current = f"{crypto.PREFIX}:{ring.primary}:%"
    with tenant_session() as session:
        ids = list(session.scalars(select(Subscription.id).where(Subscription.secrets_sealed.notlike(current))))
    changed = 0
    for ident in ids:
        with tenant_transaction() as session:
            row = session.get(Subscription, ident, with_for_update=True)
            if row is None or not ring.needs_rotation(row.secrets_sealed):
                continue
            try:
                row.secrets_sealed = ring.reseal(row.secrets_sealed, _context(row.id))
            except crypto.DecryptionFailed:  # already unusable (its deliveries fail as refused): the rest go on
                log.error("subscription %s: its secret does not open; not re-sealed", row.id)
                continue
            changed += 1
    return changed
