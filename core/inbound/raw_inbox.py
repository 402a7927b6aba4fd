"""The raw inbox: a verified, routed delivery kept as one row, in one statement and one round trip (autocommit),
before the provider gets its 2xx. Invariant: a 2xx means this row is committed; everything else a delivery
starts (de-duplication, events, jobs, their tasks) happens behind the answer, in core.inbound.processor.

The same statement wakes the processors (`pg_notify` on CHANNEL with the tenant's slug), at most once every
NOTIFY_EVERY seconds per tenant and process: NOTIFY serialises the commits that send it (PostgreSQL takes one
lock for the notification queue until commit), so one per request would cost the hook path its group commits.
A row kept without a notification of its own is found by the processor's linger (it looks at a tenant again
shortly after a batch, core.inbound.listener) or, at worst, by the fallback sweep on beat.
"""
from __future__ import annotations

import dataclasses
import time

from sqlalchemy import bindparam, func, insert, select

from connectors.base import WebhookEvent

from core.inbound.models import RawDelivery
from core.platform.logs import request_id_var
from tenancy.context import current_tenant
from tenancy.db import tenant_autocommit

CHANNEL = "zixly_inbox"
NOTIFY_EVERY = 0.05
KEPT_HEADERS = ("content-type", "user-agent", "x-shopify-topic", "x-shopify-shop-domain", "x-shopify-webhook-id",
                "x-hubspot-request-timestamp", "webhook-id", "webhook-timestamp", "x-request-id")

_TABLE = RawDelivery.__table__
_INSERT = insert(_TABLE).values(
    provider=bindparam("provider"), connection_id=bindparam("connection_id", type_=_TABLE.c.connection_id.type),
    headers=bindparam("headers", type_=_TABLE.c.headers.type), events=bindparam("events", type_=_TABLE.c.events.type),
    raw_body=bindparam("raw_body", type_=_TABLE.c.raw_body.type),
    request_id=bindparam("request_id", type_=_TABLE.c.request_id.type)).returning(_TABLE.c.id)
_KEPT = _INSERT.cte("kept")
_INSERT_AND_NOTIFY = select(_KEPT.c.id, func.pg_notify(CHANNEL, bindparam("tenant")))
_last_notified: dict[tuple[str, str], float] = {}
_EVENT_FIELDS = tuple(f.name for f in dataclasses.fields(WebhookEvent))


def kept_headers(headers: dict) -> dict:
    """The headers worth keeping with an event (what the provider said about it; never credentials)."""
    return {k.lower(): v for k, v in headers.items() if k.lower() in KEPT_HEADERS}


def keep(*, provider: str, connection_id, events, headers: dict, raw_body: bytes | None) -> int:
    """Commit one delivery's events (connectors.base.WebhookEvent, already verified and routed to the current
    tenant) as one row; its id. `raw_body` only when every event of the body is this tenant's."""
    tenant = current_tenant()
    kept = [{name: getattr(event, name) for name in _EVENT_FIELDS} for event in events]  # payloads not copied
    params = {"provider": provider, "connection_id": connection_id, "headers": kept_headers(headers),
              "events": kept, "raw_body": raw_body, "tenant": tenant.slug, "request_id": request_id_var.get()}
    now, key = time.monotonic(), (tenant.shard, tenant.slug)
    wake = now - _last_notified.get(key, 0.0) >= NOTIFY_EVERY
    with tenant_autocommit() as connection:
        row_id = connection.execute(_INSERT_AND_NOTIFY if wake else _INSERT, params).scalar_one()
    if wake:
        _last_notified[key] = now
    return row_id
