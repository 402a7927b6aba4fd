"""Test events for the development stack: the running provider simulator (sandbox) is asked to make something
happen at a provider ("a Xero invoice is paid") and to send Zixly the webhook for it, signed exactly as the
provider signs it, to the URL the provider would use for that tenant's connection.

Invariant: Zixly never signs a test event itself. The simulator changes its own data first and signs with the
app secret it holds (sandbox.control), so the webhook goes through the same verification, routing, inbox and
workflows as a real one, and the workflow's follow-up reads find the change. Nothing is sent unless the tenant
has an active connection of that provider; bad input raises one of the errors below and sends nothing.
"""
from __future__ import annotations

from dataclasses import dataclass

import requests

from core.connections import sealing, store
from core.connections.errors import ConnectionNotFound
from core.connections.providers import app_credentials
from core.platform.errors import Conflict, Invalid, NotFound, Unavailable, UpstreamFailed
from core.platform.runtime import settings
from tenancy.apikeys import tenant_ref
from tenancy.context import tenant_context
from tenancy.db import get_router
from tenancy.provisioning import TenantNotFound, get_tenant


@dataclass(frozen=True)
class SimulatedEvent:
    """One event a simulator can emit, and where the provider delivers it."""

    provider: str
    event: str
    description: str
    app_level: bool  # True: the provider's one URL for Zixly's app; False: the connection's own hook endpoint
    subscriber_secret: bool = False  # Standard Webhooks: the sender is configured with the connection's secret


TEST_EVENTS: dict[tuple[str, str], SimulatedEvent] = {(e.provider, e.event): e for e in (
    SimulatedEvent("xero", "invoice.paid", "An invoice is paid in full (the oldest unpaid one of the organisation)",
                   app_level=True),
    SimulatedEvent("hubspot", "deal.won", "A deal moves to closedwon (the first open deal of the portal)",
                   app_level=True),
    SimulatedEvent("shopify", "orders/create", "A customer places an order in the shop", app_level=False),
    SimulatedEvent("asana", "task.completed", "A task of the workspace is completed (Asana's handshake first, once)",
                   app_level=False),
    SimulatedEvent("salesforce", "invoice.paid", "A Revenova invoice is marked Paid (outbound Standard Webhook)",
                   app_level=False, subscriber_secret=True),
)}


class UnknownTestEvent(Invalid):
    code = "unknown-test-event"


class EventTenantNotFound(NotFound):
    code = "tenant-not-found"


class NoConnectionForTestEvent(Conflict):
    code = "no-active-connection"


class SimulatorUnavailable(Unavailable):
    code = "test-events-unavailable"


class SimulatorRefused(UpstreamFailed):
    code = "test-event-refused"


def events_for(provider: str) -> list[SimulatedEvent]:
    """The events `send_test_event` can send for a provider (for a console's menu)."""
    return [e for (p, _), e in sorted(TEST_EVENTS.items()) if p == provider]


def send_test_event(provider: str, event: str, *, tenant_slug: str, connection_id: str | None = None,
                    resource_id: str | None = None, timeout: float = 30.0) -> dict:
    """Make the simulated `provider` emit `event` (see TEST_EVENTS, e.g. ("xero", "invoice.paid")) for the
    tenant's active connection of that provider (or `connection_id`, which must be the tenant's), and send Zixly
    the signed webhook. `resource_id` picks the record (an invoice id, a deal id), else the simulator picks one.

    Answers {"provider", "event", "connection_id", "account", "resource_id", "changed", "status", "delivered",
    "received"}: `status` is Zixly's answer to the delivery (200 when verified and kept), `changed` what happened
    at the provider, `received` how many events of it Zixly kept when its answer says (connection endpoints; they
    are fanned out into events and jobs right behind the answer, by `zixly inbox`).
    Raises UnknownTestEvent (400), EventTenantNotFound / ConnectionNotFound (404), NoConnectionForTestEvent (409),
    SimulatorRefused (502: the simulator refused) or SimulatorUnavailable (503: no simulator configured or
    reachable). Runs outside or inside a request of that tenant; needs ZIXLY_PROVIDER_SIMULATOR_URL and
    ZIXLY_PUBLIC_BASE_URL (`zixly dev` sets both)."""
    spec = TEST_EVENTS.get((provider, event))
    if spec is None:
        known = ", ".join(f"{p} {e}" for p, e in sorted(TEST_EVENTS))
        raise UnknownTestEvent(f"no test event {provider!r} {event!r}; known: {known}")
    simulator, base = settings().provider_simulator_url, settings().public_base_url
    if not simulator or not base:
        raise SimulatorUnavailable("test events need the provider simulators and ZIXLY_PUBLIC_BASE_URL "
                                    "(`make run` sets both)")
    try:
        tenant = tenant_ref(get_tenant(get_router(), tenant_slug))
    except TenantNotFound:
        raise EventTenantNotFound(f"no tenant {tenant_slug!r}") from None
    with tenant_context(tenant):
        conn = _connection(provider, connection_id)
        app = app_credentials(provider, conn)
        target = (f"{base.rstrip('/')}/v1/hooks/apps/{provider}" if spec.app_level and not conn.app_client_id
                  else f"{base.rstrip('/')}/v1/hooks/{sealing.hook_token(conn)}")
        secrets_ = sealing.webhook_secret_values(conn) if spec.subscriber_secret else []
    if spec.subscriber_secret:  # as the admin configures the sender: the connection's newest secret, its URL
        if not secrets_:
            raise NoConnectionForTestEvent(f"the {provider} connection has no webhook secret yet; add one "
                                           f"(POST /v1/connections/{conn.id}/webhook/secrets)")
        _ask(simulator, "subscriptions", {"provider": provider, "target_url": target, "secret": secrets_[-1]},
             timeout, ok=201)
    request = {"provider": provider, "event": event, "target_url": target, "client_id": app.client_id,
               "account": conn.account_id}
    if resource_id:
        request["resource_id"] = str(resource_id)
    answer = _ask(simulator, "webhooks", request, timeout)
    response = answer.get("response")
    return {"provider": provider, "event": event, "connection_id": str(conn.id), "account": answer.get("account"),
            "resource_id": answer.get("resource_id"), "changed": answer.get("changed") or {},
            "status": answer.get("status"), "delivered": bool(answer.get("delivered")),
            "received": int(response.get("received") or 0) if isinstance(response, dict) else 0}


def _connection(provider: str, connection_id: str | None):
    if connection_id is not None:
        try:
            conn = store.get_connection(connection_id)
        except ConnectionNotFound:  # another tenant's connection is not found either (404)
            raise ConnectionNotFound(f"this tenant has no connection {connection_id}") from None
        if conn.provider != provider:
            raise UnknownTestEvent(f"connection {connection_id} is a {conn.provider} connection, not {provider}")
    else:
        found = store.list_connections(limit=1, provider=provider, status="active")
        conn = found[0] if found else None
    if conn is None or conn.status != "active" or not conn.account_id:
        raise NoConnectionForTestEvent(f"connect an account of {provider} first (an active connection is needed; "
                                       "the event names its account)")
    return conn


def _ask(simulator: str, endpoint: str, request: dict, timeout: float, ok: int = 200) -> dict:
    try:
        answer = requests.post(f"{simulator.rstrip('/')}/_sandbox/{endpoint}", json=request, timeout=timeout)
    except requests.RequestException as exc:
        raise SimulatorUnavailable(f"the provider simulator at {simulator} cannot be reached "
                                    f"({type(exc).__name__})") from None
    try:
        body = answer.json()
    except ValueError:
        body = {}
    if answer.status_code != ok or not isinstance(body, dict):
        reason = body.get("error") if isinstance(body, dict) else None
        raise SimulatorRefused(f"the simulator did not send the event: {reason or answer.status_code}")
    return body
