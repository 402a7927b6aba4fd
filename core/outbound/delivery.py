"""What the outbound consumer does with one message: find its delivery, pace it under the connection's
quota, make the call once, record the outcome — and tell the consumer what to do with the message.

PostgreSQL, not SQS, decides whether a write already happened: a message delivered again (a consumer died
before deleting it, SQS's five-minute de-duplication window passed, a relay sent it twice) finds its row
delivered and is only deleted. Calls that may be repeated after a crash carry the provider's own idempotency
key when the connector takes one.
"""
from __future__ import annotations

import inspect
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, func, or_, update

from connectors.errors import InvalidOptions, Permanent, RateLimited, ReauthRequired
from connectors.registry import CONNECTORS
from core.connections import api_calls
from core.events import catalogue, recorder
from core.outbound import token_bucket
from core.outbound.models import Delivery
from core.platform import metrics, signals
from core.platform.errors import Conflict, Invalid, NotFound
from tenancy.context import TenantRef, tenant_context, tenant_key
from tenancy.db import get_router, tenant_session, tenant_transaction
from tenancy.provisioning import load_tenant_ref

log = logging.getLogger("zixly.delivery")

# Retrying cannot help: the provider refused the request, the grant is gone, the connection or the operation is.
FAILURES = (Permanent, ReauthRequired, InvalidOptions, NotFound, Conflict, Invalid, TypeError, AttributeError,
            KeyError)
SUSPENDED_RETRY_SECONDS = 900  # a suspended tenant's writes wait (then dead-letter, replayable once resumed)
RESPONSE_LIMIT = 64 * 1024  # larger answers are not kept on the row
TENANT_TTL = 5.0


@dataclass(frozen=True)
class Outcome:
    delete: bool  # the message is done with (delivered, failed, stale, duplicate)
    status: str  # metrics label: delivered | failed | dead | retried | rate_limited | paced | duplicate | dropped
    delay: float | None = None  # when kept: seconds until it is seen again (None: the consumer's backoff)
    detail: str = ""


@dataclass(frozen=True)
class Message:
    tenant: str
    delivery: uuid.UUID
    generation: int


def parse(body: str) -> Message | None:
    try:
        doc = json.loads(body)
        return Message(str(doc["tenant"]), uuid.UUID(str(doc["delivery"])), int(doc["generation"]))
    except (ValueError, TypeError, KeyError):
        return None


# -- tenants (a short cache: one catalog read per tenant every few seconds, not per message) --------------------

_tenants: dict[str, tuple[float, TenantRef | None]] = {}


def _tenant(slug: str) -> TenantRef | None:
    cached = _tenants.get(slug)
    if cached and cached[0] > time.monotonic():
        return cached[1]
    ref = load_tenant_ref(get_router(), slug)
    _tenants[slug] = (time.monotonic() + TENANT_TTL, ref)
    return ref


# -- the provider's status code of the last call made by this thread ---------------------------------------------

_last = threading.local()


def remember_status(provider, method, status, seconds) -> None:
    """A provider-call hook (core.bootstrap attaches it): the status code of this thread's last call."""
    _last.status = status or None



# -- delivering -----------------------------------------------------------------------------------------------

def deliver(body: str, *, hold: Callable[[float], bool], in_flight: float = 180.0) -> Outcome:
    """Handle one message from an outbound queue. `hold(seconds)` waits for a token while keeping the message
    (False: do not wait that long here — the message is handed back to SQS for that long instead).
    `in_flight`: the queue's visibility timeout; a delivery claimed more recently than that is being sent by
    another consumer (the same message received twice), and is left to it."""
    message = parse(body)
    if message is None:
        return Outcome(True, "dropped", detail="not a delivery message")
    tenant = _tenant(message.tenant)
    if tenant is None or tenant.status in ("archived", "failed", "erased"):
        return Outcome(True, "dropped", detail=f"tenant {message.tenant!r} is gone")
    if tenant.status != "active":
        return Outcome(False, "paced", SUSPENDED_RETRY_SECONDS, f"tenant is {tenant.status}")
    with tenant_context(tenant):
        return _deliver(message, hold, in_flight)


def _deliver(message: Message, hold: Callable[[float], bool], in_flight: float) -> Outcome:
    with tenant_session() as session:
        row = session.get(Delivery, message.delivery)
    if row is None or row.generation != message.generation:
        return Outcome(True, "dropped", detail="no such delivery (or replayed since)")
    if row.status in ("delivered", "failed"):
        outcome = Outcome(True, "duplicate", detail=f"already {row.status}")
    else:
        outcome = _attempt(row, hold, in_flight)
    if outcome.status != "dropped":
        metrics.deliveries.labels(row.provider, outcome.status).inc()
    return outcome


def _attempt(row: Delivery, hold: Callable[[float], bool], in_flight: float) -> Outcome:
    bucket, quota = tenant_key("outbound-bucket", str(row.connection_id)), token_bucket.quota(row.provider)
    while (wait := token_bucket.take(bucket, quota)) > 0:
        metrics.outbound_budget_waits.labels(row.provider, "quota").inc()
        if not hold(wait):
            return Outcome(False, "paced", wait, "waiting for the connection's quota")
    if not _claim(row, in_flight):
        return _unclaimed(row, in_flight)
    _last.status = None
    try:
        result = api_calls.call(row.connection_id, row.operation, **_arguments(row))
    except RateLimited as exc:
        metrics.outbound_budget_waits.labels(row.provider, "provider_429").inc()
        token_bucket.block(bucket, quota, exc.retry_after)
        _record(row, "queued", code=429, error=str(exc))
        return Outcome(False, "rate_limited", exc.retry_after, str(exc))
    except FAILURES as exc:
        _record(row, "failed", code=_code(exc), error=_describe(exc))
        return Outcome(True, "failed", detail=_describe(exc))
    except Exception as exc:  # Transient, Unavailable, a database blip: SQS brings the message back
        _record(row, "queued", code=_code(exc), error=_describe(exc))
        return Outcome(False, "retried", detail=_describe(exc))
    _record(row, "delivered", code=_last.status or 200, response=_jsonable(result))
    return Outcome(True, "delivered")


def _arguments(row: Delivery) -> dict:
    """The stored arguments, plus the provider's idempotency key when the operation takes one, so a write
    repeated after a crash (called, then died before recording) is applied once by the provider."""
    kwargs = dict(row.args or {})
    method = getattr(CONNECTORS[row.provider], row.operation)
    if "idempotency_key" in inspect.signature(method).parameters and not kwargs.get("idempotency_key"):
        kwargs["idempotency_key"] = f"zixly-{row.id}"
    return kwargs


def _claim(row: Delivery, in_flight: float) -> bool:
    """Mark the delivery as being sent, unless another consumer is sending it right now. A `sending` row older
    than the visibility timeout was left by a consumer that died mid-call: its message came back, take it."""
    abandoned = and_(Delivery.status == "sending",
                     Delivery.updated_at < func.now() - timedelta(seconds=in_flight))
    with tenant_transaction() as session:
        claimed = session.execute(
            update(Delivery).where(Delivery.id == row.id, Delivery.generation == row.generation,
                                   or_(Delivery.status.in_(("queued", "dead")), abandoned))
            .values(status="sending", attempts=Delivery.attempts + 1, updated_at=func.now())
            .returning(Delivery.attempts)).scalar()
    return claimed is not None


def _unclaimed(row: Delivery, in_flight: float) -> Outcome:
    with tenant_session() as session:
        now = session.get(Delivery, row.id)
    if now is None or now.generation != row.generation:
        return Outcome(True, "dropped", detail="replayed since")
    if now.status in ("delivered", "failed"):
        return Outcome(True, "duplicate", detail=f"already {now.status}")
    # the same message in two hands (SQS at-least-once, moto's unlocked receive): the other one is sending it
    return Outcome(False, "paced", in_flight, "another consumer is sending it")


def _record(row: Delivery, state: str, *, code: int | None = None, error: str | None = None, response=None) -> None:
    values = {"status": state, "response_status": code, "updated_at": _now()}
    if state == "delivered":
        values.update(response=response, delivered_at=_now(), last_error=None)
    else:
        values["last_error"] = (error or "")[:2000]
    with tenant_transaction() as session:
        session.execute(update(Delivery).where(Delivery.id == row.id, Delivery.generation == row.generation)
                        .values(**values))
    if state == "delivered" and row.queued_at is not None:
        metrics.delivery_latency.labels(row.provider).observe((_now() - row.queued_at).total_seconds())


def _code(exc: Exception) -> int | None:
    code = getattr(exc, "status", None)
    return code if isinstance(code, int) else getattr(_last, "status", None)


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:2000]


def _jsonable(result):
    try:
        text = json.dumps(result, default=str)
    except (TypeError, ValueError):
        return {"unserializable": type(result).__name__}
    if len(text) > RESPONSE_LIMIT:
        return {"truncated": True, "bytes": len(text)}
    return json.loads(text)


def _now() -> datetime:
    return datetime.now(UTC)


# -- dead letters ---------------------------------------------------------------------------------------------

def bury(body: str) -> Outcome:
    """A message SQS moved to the dead-letter queue after its last receive: its delivery becomes `dead`
    (visible in the API, replayable). The row keeps everything needed to send it again."""
    message = parse(body)
    tenant = _tenant(message.tenant) if message else None
    if tenant is None or tenant.status in ("archived", "failed", "erased"):
        return Outcome(True, "dropped", detail="no such tenant")
    with tenant_context(tenant):
        with tenant_transaction() as session:
            row = session.get(Delivery, message.delivery, with_for_update=True)
            fresh = row is not None and row.generation == message.generation and row.status in ("queued", "sending")
            if fresh:
                row.status, row.updated_at = "dead", _now()
                row.last_error = (f"out of attempts after {row.attempts}; last error: {row.last_error or '-'}")[:2000]
                recorder.record(session, catalogue.DELIVERY_DEAD_LETTERED, {
                    "delivery_id": str(row.id), "provider": row.provider, "connection_id": str(row.connection_id),
                    "job_id": str(row.job_id) if row.job_id else None, "reason": row.last_error[:500]},
                    connection_id=row.connection_id)
        if not fresh:
            return Outcome(True, "dropped", detail="delivered, failed or replayed since")
        metrics.deliveries.labels(row.provider, "dead").inc()
        signals.emit(signals.delivery_dead_lettered, tenant=tenant, provider=row.provider,
                     message_id=str(row.id), reason=row.last_error, delivery_id=row.id)
    return Outcome(True, "dead")
