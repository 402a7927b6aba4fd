"""Inbound webhooks: find the tenant, verify with the provider's own scheme, keep the delivery durably.

The hook path does only what deciding the answer needs: verify the signature on the raw bytes, route from the
cache, and commit the delivery's events as one raw row (core.inbound.raw_inbox: one statement, one round trip)
before the 2xx. De-duplication, events, jobs and their tasks follow behind it (core.inbound.processor).

Per-connection hooks (`/v1/hooks/{token}`) are routed by their secret token and verified with the connection's
secrets (and, for a provider Zixly has a public app on, that app's secret: the provider signs a shop's or
portal's subscriptions with it too); an event there that names another account than the connection's is dropped.
App-level hooks (`/v1/hooks/apps/{provider}`) use Zixly's app secret and route each event by the account its
signed body names; an event whose body names none cannot be routed there and the delivery is refused.
"""
from __future__ import annotations

import functools
import logging
import time
from collections import defaultdict
from dataclasses import dataclass

from connectors.base import Handshake, InboundRequest, VerificationFailed, WebhookScheme
from connectors.hubspot import HubSpotScheme
from connectors.registry import APP_HOOK_PROVIDERS, get_scheme
from core.connections import hook_secrets, routing, sealing, store
from core.inbound import raw_inbox, webhook_budget
from core.platform import audit, metrics
from core.platform.actors import Actor
from core.platform.errors import NotFound
from core.platform.runtime import redis_client, settings
from tenancy.context import tenant_context, tenant_key
from tenancy.db import get_router
from tenancy.shards import is_moving

log = logging.getLogger("zixly.webhooks")


class UnknownEndpoint(NotFound):
    code = "unknown-webhook-endpoint"


class TenantNotReceiving(Exception):
    code = "tenant-not-receiving"


class TenantMoving(Exception):
    """The tenant is being moved between servers (a few seconds): 503, so the provider delivers again later
    (the inbox de-duplicates what it had already kept), instead of events acknowledged and dropped."""

    code = "tenant-moving"


class UnroutableDelivery(Exception):
    """Verified, but its body names no account, so the app-level URL cannot tell whose it is: 422, kept nowhere."""

    code = "app-hook-unroutable"


# the two counters every delivery moves, one child per provider looked up once (labels() validates each time)
_received = functools.cache(metrics.webhooks_received.labels)
_verified = functools.cache(metrics.webhooks_verified.labels)


def scheme_for(provider: str) -> WebhookScheme:
    """The provider's scheme as this deployment configures it: HubSpot's legacy (untimed) signatures are refused
    unless `ZIXLY_HUBSPOT_LEGACY_SIGNATURES` lists them."""
    if provider == "hubspot":
        return HubSpotScheme(legacy_versions=settings().hubspot_legacy_signatures)
    return get_scheme(provider)


def _refuse_if_moving(tenant, provider: str) -> None:
    if tenant.status == "suspended" and is_moving(get_router(), tenant.id):
        metrics.webhooks_rejected.labels(provider, "tenant-moving").inc()
        raise TenantMoving(f"tenant {tenant.slug} is being moved; deliver again shortly")


@dataclass
class IngestResult:
    """`received`: events kept (in the raw inbox, durably); `dropped`: verified events that are no tenant's."""

    provider: str
    handshake: Handshake | None = None
    received: int = 0
    dropped: int = 0


def _audit_failure(connection_id, reason: str) -> None:
    """At most one audit entry per connection per minute, so a flood of bad signatures cannot fill the log."""
    try:
        if not redis_client().set(tenant_key("hookfail", str(connection_id)), 1, nx=True, ex=60):
            return
    except Exception:  # Redis down: skip the audit entry rather than fail the answer
        return
    audit.record_now(actor=Actor("system", "webhooks"), action="webhook.verification_failed",
                     target_type="connection", target_id=str(connection_id), details={"reason": reason})


def ingest_connection_hook(token: str, request: InboundRequest) -> IngestResult:
    found = routing.resolve_endpoint(token)
    if found is None:
        metrics.webhooks_rejected.labels("unknown", "unknown-endpoint").inc()
        raise UnknownEndpoint("no webhook endpoint with this token")
    tenant, connection_id, provider = found
    _received(provider).inc()
    if tenant.status != "active":
        _refuse_if_moving(tenant, provider)
        raise TenantNotReceiving(f"tenant is {tenant.status}")
    scheme = scheme_for(provider)
    with tenant_context(tenant):
        conn = store.get_connection(connection_id)
        handshake = scheme.handshake(request)
        if handshake is not None:
            # Only the first handshake is believed: otherwise anyone knowing the URL could add a secret of
            # their own and sign forged events with it. A re-subscription resets the secrets first.
            if conn.webhook_secrets_sealed and sealing.webhook_secrets(conn):
                raise VerificationFailed("handshake refused: this endpoint already has a secret")
            hook_secrets.set_webhook_secrets(connection_id, [handshake.headers["X-Hook-Secret"]])
            return IngestResult(provider, handshake=handshake)
        try:
            scheme.verify(request, _connection_secrets(scheme, conn), now=time.time())
        except VerificationFailed as exc:
            metrics.webhooks_rejected.labels(provider, "signature").inc()
            _audit_failure(connection_id, str(exc))
            raise
        _verified(provider).inc()
        webhook_budget.spend(tenant)
        events = _events(scheme, request, provider)
        own = [e for e in events if e.account_id is None or not conn.account_id or e.account_id == conn.account_id]
        if len(own) < len(events):
            metrics.webhooks_unrouted.labels(provider).inc(len(events) - len(own))
            log.info("dropped %d %s event(s) naming another account than the connection's",
                     len(events) - len(own), provider)
        if own:
            raw_inbox.keep(provider=provider, connection_id=connection_id, events=own, headers=request.headers,
                           raw_body=request.body if len(own) == len(events) else None)
    return IngestResult(provider, received=len(own), dropped=len(events) - len(own))


def _connection_secrets(scheme: WebhookScheme, conn) -> list[str]:
    own = sealing.webhook_secret_values(conn)
    return own + list(settings().app_webhook_secrets.get(scheme.provider, ())) if scheme.app_level else own


def _events(scheme, request: InboundRequest, provider: str):
    try:
        return scheme.events(request)
    except Exception:
        metrics.webhooks_rejected.labels(provider, "malformed").inc()
        raise


def ingest_app_hook(provider: str, request: InboundRequest) -> IngestResult:
    if provider not in APP_HOOK_PROVIDERS:
        metrics.webhooks_rejected.labels("unknown", "unknown-provider").inc()
        raise UnknownEndpoint(f"no app-level webhooks for {provider!r}")
    _received(provider).inc()
    scheme = scheme_for(provider)
    try:
        scheme.verify(request, settings().app_webhook_secrets.get(provider, ()), now=time.time())
    except VerificationFailed:
        metrics.webhooks_rejected.labels(provider, "signature").inc()
        raise
    _verified(provider).inc()
    events = _events(scheme, request, provider)
    unroutable = next((event for event in events if event.account_id is None), None)
    if unroutable is not None:
        metrics.webhooks_rejected.labels(provider, "unroutable").inc()
        raise UnroutableDelivery(
            f"this {provider} delivery's signed body names no {provider} account (a {unroutable.event_type!r} body "
            "does not), so the app-level URL cannot tell whose it is; subscribe the connection's own endpoint, "
            "POST /v1/hooks/{endpoint_token}, for it")
    by_account = defaultdict(list)
    for event in events:
        by_account[event.account_id].append(event)
    owners = routing.resolve_accounts(provider, {a for a in by_account if a})
    for tenant, _ in owners.values():  # before anything is kept: the whole delivery comes again
        _refuse_if_moving(tenant, provider)
    result = IngestResult(provider)
    for account, account_events in by_account.items():
        owner = owners.get(account)
        if owner is None or owner[0].status != "active":
            result.dropped += len(account_events)
            metrics.webhooks_unrouted.labels(provider).inc(len(account_events))
            log.info("dropped %d %s event(s) for unowned account", len(account_events), provider)
            continue
        tenant, connection_id = owner
        single = len(by_account) == 1  # never store a body that carries another tenant's events
        with tenant_context(tenant):
            raw_inbox.keep(provider=provider, connection_id=connection_id, events=account_events,
                           headers=request.headers, raw_body=request.body if single else None)
        result.received += len(account_events)
    return result


