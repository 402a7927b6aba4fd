"""Domain events other parts listen to (notifications, metrics) without the emitter knowing them.

Receivers run in the emitter's process after its transaction committed; a receiver must only record or
queue work (never call a provider), and its failure must never undo what happened.
"""
from __future__ import annotations

import logging

from blinker import Namespace

log = logging.getLogger("zixly.signals")
_events = Namespace()

connection_reauth_required = _events.signal("connection-reauth-required")
connection_activated = _events.signal("connection-activated")
job_failed = _events.signal("job-failed")
api_key_created = _events.signal("api-key-created")
tenant_created = _events.signal("tenant-created")


def emit(signal, **payload) -> None:
    """Send a domain event; a failing receiver is logged, never raised into the emitter."""
    for receiver in signal.receivers_for(None):
        try:
            receiver(None, **payload)
        except Exception:
            log.exception("receiver of %s failed", signal.name)

# Keyword payloads. Every signal carries `tenant` (the TenantRef it happened in); receivers accept **extra so an
# emitter may add keys without breaking them.
#   connection_reauth_required: connection_id (UUID), reason (str)
#   connection_activated:       connection_id (UUID)
#   job_failed:                 job_id (UUID), workflow (str), error (str), attempts (int), failed_at (aware datetime)
#   api_key_created:            key_id (UUID), name (str), role (str), prefix (str), created_by (str "type:id")
#   tenant_created:             name (str), admin_email (str | None)
#   delivery_dead_lettered:     provider (str), message_id (str), reason (str)
delivery_dead_lettered = _events.signal("delivery-dead-lettered")
