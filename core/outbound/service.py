"""Writes to providers leave through one SQS FIFO queue per provider: `request` records a delivery and sends it,
the consumer (`zixly outbound`, core.delivery) makes the call, and the row says how it went.

A delivery is committed before it is sent, and sent after commit; when SQS cannot be reached the row waits
and `relay` sends it later, in order, so nothing accepted is lost. Messages carry ids only, never a token.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, exists, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import aliased

from connectors.oauth import Connector
from connectors.ratelimits import Quota
from connectors.registry import CONNECTORS
from core.connections.models import Connection
from core.outbound.models import Delivery
from core.platform import audit, aws
from core.platform.actors import Actor
from core.platform.errors import Conflict, Invalid, NotFound
from core.platform.runtime import settings
from tenancy.context import current_tenant
from tenancy.db import tenant_session, tenant_transaction

log = logging.getLogger("zixly.outbound")

STATUSES = ("queued", "sending", "delivered", "failed", "dead")
FINAL = ("delivered", "failed", "dead")
REPLAYABLE = ("failed", "dead")
# After a failed send, requests skip SQS for a while (the relay catches up) instead of each waiting to fail.
BREAKER_SECONDS = 5.0
# The relay leaves fresh rows to the request that wrote them, so one message is not sent twice.
RELAY_MIN_AGE = timedelta(seconds=30)
_GROUP_SAFE = re.compile(r"[!-~]{1,255}")  # what SQS accepts in a MessageGroupId (printable ASCII, no space)
_sqs_down_until = 0.0


class DeliveryNotFound(NotFound):
    code = "delivery-not-found"


class DeliveryNotReplayable(Conflict):
    code = "delivery-not-replayable"


# -- SQS ------------------------------------------------------------------------------------------------------

_clients: dict = {}
_urls: dict = {}
_lock = threading.Lock()


def sqs_client():
    """One SQS client per process (boto3 clients are thread-safe), with room for every consumer thread."""
    s = settings()
    key = (s.aws_endpoint_url, s.aws_region)
    with _lock:
        if key not in _clients:
            import boto3
            from botocore.config import Config

            _clients[key] = boto3.client("sqs", region_name=s.aws_region, endpoint_url=s.aws_endpoint_url,
                                         config=Config(max_pool_connections=64, connect_timeout=2, read_timeout=30,
                                                       retries={"max_attempts": 2, "mode": "standard"}))
        return _clients[key]


def queue_name(provider: str, *, dead: bool = False) -> str:
    prefix = settings().outbound_queue_prefix
    return aws.outbound_dlq_name(provider, prefix) if dead else aws.outbound_queue_name(provider, prefix)


def queue_url(provider: str, *, dead: bool = False) -> str:
    name = queue_name(provider, dead=dead)
    key = (settings().aws_endpoint_url, name)
    if key not in _urls:
        _urls[key] = sqs_client().get_queue_url(QueueName=name)["QueueUrl"]
    return _urls[key]


def group_id(tenant_slug: str, connection_id, record_key: str) -> str:
    """One record's writes stay in order; a record key SQS would refuse (or too long) is hashed."""
    group = f"{tenant_slug}:{connection_id}:{record_key}"
    if len(group) <= 128 and _GROUP_SAFE.fullmatch(record_key):
        return group
    return f"{tenant_slug}:{connection_id}:#{hashlib.sha256(record_key.encode()).hexdigest()[:40]}"


def dedup_id(tenant_slug: str, dedup_key: str, generation: int) -> str:
    return hashlib.sha256(f"{tenant_slug}\0{dedup_key}\0{generation}".encode()).hexdigest()


def message_body(tenant_slug: str, row: Delivery) -> str:
    return json.dumps({"tenant": tenant_slug, "delivery": str(row.id), "generation": row.generation})


def quota(provider: str) -> Quota:
    override = settings().outbound_quotas.get(provider)
    return Quota.parse(override) if override else CONNECTORS[provider].quota


def _batches(tenant_slug: str, rows: list[Delivery]):
    """Consecutive rows of one provider, ten at most, no two of one message group: if SQS refuses an entry,
    nothing of its group was sent after it (and sending stops there)."""
    batch: list[Delivery] = []
    for row in rows:
        groups = {group_id(tenant_slug, r.connection_id, r.record_key) for r in batch}
        if batch and (len(batch) == 10 or row.provider != batch[0].provider
                      or group_id(tenant_slug, row.connection_id, row.record_key) in groups):
            yield batch
            batch = []
        batch.append(row)
    if batch:
        yield batch


def _send(tenant_slug: str, rows: list[Delivery]) -> list[Delivery]:
    """Send rows in order, a batch per call; answer the ones SQS took. Raises when SQS cannot be reached."""
    sent: list[Delivery] = []
    for batch in _batches(tenant_slug, rows):
        answer = sqs_client().send_message_batch(QueueUrl=queue_url(batch[0].provider), Entries=[
            {"Id": str(i), "MessageBody": message_body(tenant_slug, row),
             "MessageGroupId": group_id(tenant_slug, row.connection_id, row.record_key),
             "MessageDeduplicationId": dedup_id(tenant_slug, row.dedup_key, row.generation)}
            for i, row in enumerate(batch)])
        refused = {int(f["Id"]): f.get("Message", f.get("Code")) for f in answer.get("Failed", [])}
        sent += [row for i, row in enumerate(batch) if i not in refused]
        if refused:
            log.warning("SQS refused %d outbound message(s): %s", len(refused), sorted(set(refused.values())))
            break
    return sent


def _send_after_commit(rows: list[Delivery]) -> int:
    """Send just-committed rows in order; what could not be sent waits for the relay."""
    global _sqs_down_until
    if not rows or time.monotonic() < _sqs_down_until:
        return 0
    try:
        sent = _send(current_tenant().slug, rows)
    except Exception as exc:  # SQS unreachable: the relay sends these later
        _sqs_down_until = time.monotonic() + BREAKER_SECONDS
        log.warning("outbound send failed; %d delivery(ies) left for the relay: %s", len(rows), exc)
        return 0
    _mark_sent(sent)
    return len(sent)


def _mark_sent(rows: list[Delivery]) -> None:
    if rows:
        with tenant_transaction() as session:
            session.execute(update(Delivery).where(
                tuple_(Delivery.id, Delivery.generation).in_([(r.id, r.generation) for r in rows]),
                Delivery.sent_at.is_(None)).values(sent_at=_now()))


def _now() -> datetime:
    return datetime.now(UTC)


# -- requesting a write ---------------------------------------------------------------------------------------

def operation_allowed(provider: str, operation: str) -> bool:
    """A provider's own API method: not OAuth plumbing (refresh, revoke …) and nothing private."""
    cls = CONNECTORS.get(provider)
    return (cls is not None and isinstance(operation, str) and not operation.startswith("_")
            and not hasattr(Connector, operation) and callable(getattr(cls, operation, None)))


def _check(provider, operation, args, dedup_key, record_key) -> None:
    if provider not in aws.OUTBOUND_PROVIDERS:
        raise Invalid(f"no outbound queue for provider {provider!r}")
    if not operation_allowed(provider, operation):
        raise Invalid(f"{operation!r} is not a {provider} operation")
    for name, value in (("dedup_key", dedup_key), ("record_key", record_key)):
        if not isinstance(value, str) or not 0 < len(value) <= 255:
            raise Invalid(f"{name} must be a string of 1 to 255 characters")
    if not isinstance(args, dict):
        raise Invalid("args must be an object")
    try:
        json.dumps(args, allow_nan=False)
    except (TypeError, ValueError):
        raise Invalid("args must be JSON (strings, numbers, booleans, lists and objects)") from None


def _uuid(value, name: str) -> uuid.UUID:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except ValueError:
        raise Invalid(f"{name} must be a UUID") from None


def request(*, provider: str, connection_id: uuid.UUID, record_key: str, operation: str, args: dict,
            dedup_key: str, job_id: uuid.UUID | None = None) -> uuid.UUID:
    """Record a write (once per `dedup_key`) and send it to the provider's queue after commit."""
    _check(provider, operation, args, dedup_key, record_key)
    connection_id, job_id = _uuid(connection_id, "connection_id"), job_id and _uuid(job_id, "job_id")
    with tenant_transaction() as session:
        owner = session.scalar(select(Connection.provider).where(Connection.id == connection_id,
                                                                 Connection.deleted_at.is_(None)))
        if owner != provider:
            raise Invalid(f"connection {connection_id} is not a {provider} connection of this tenant")
        new = session.execute(insert(Delivery).values(
            id=uuid.uuid4(), provider=provider, connection_id=connection_id, record_key=record_key,
            operation=operation, args=args, dedup_key=dedup_key, job_id=job_id, status="queued", generation=0,
            attempts=0, replays=0).on_conflict_do_nothing(index_elements=["dedup_key"])
            .returning(Delivery.id)).scalar()
        row = session.scalar(select(Delivery).where(Delivery.dedup_key == dedup_key))
        if new is None and (row.sent_at is not None or row.status != "queued"):
            return row.id  # requested before: nothing more to do
        earlier = aliased(Delivery)
        waiting = session.scalar(select(exists().where(
            earlier.connection_id == row.connection_id, earlier.record_key == row.record_key, earlier.id != row.id,
            earlier.status == "queued", earlier.sent_at.is_(None), earlier.queued_at <= row.queued_at)))
    if not waiting:  # an earlier write to the record still waits for the relay: go after it, not before
        _send_after_commit([row])
    return row.id


def wait(delivery_id: uuid.UUID, timeout: float) -> Delivery:
    """Poll until the delivery is delivered, failed or dead (and return it); TimeoutError when it takes longer."""
    started = time.monotonic()
    deadline, pause = started + timeout, 0.02
    while True:
        row = get_delivery(delivery_id)
        if row.status in FINAL:
            return row
        now = time.monotonic()
        left = deadline - now
        if left <= 0:
            raise TimeoutError(f"delivery {delivery_id} is still {row.status} after {timeout:g} s")
        time.sleep(min(pause, left))
        # a delivery usually lands within a few hundred ms: look every 50 ms then, and back off after 5 s
        pause = min(pause * 1.5, 0.05 if now - started < 5 else 0.5)


# -- reading --------------------------------------------------------------------------------------------------

def parse_delivery_id(value) -> uuid.UUID:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except ValueError:
        raise DeliveryNotFound(f"no delivery {value}") from None


def get_delivery(delivery_id) -> Delivery:
    with tenant_session() as session:
        row = session.get(Delivery, parse_delivery_id(delivery_id))
    if row is None:
        raise DeliveryNotFound(f"no delivery {delivery_id}")
    return row


def _filtered(query, *, status=None, provider=None, connection_id=None, job_id=None, before=None):
    for column, value in ((Delivery.status, status), (Delivery.provider, provider),
                          (Delivery.connection_id, connection_id), (Delivery.job_id, job_id)):
        if isinstance(value, (list, tuple)):
            query = query.where(column.in_(value))
        elif value is not None:
            query = query.where(column == value)
    return query.where(Delivery.queued_at < before) if before is not None else query


def list_deliveries(*, limit: int, after: tuple | None = None, **filters) -> list[Delivery]:
    """Newest first; `after` is the (queued_at, id) of the last row of the previous page."""
    query = _filtered(select(Delivery), **filters).order_by(Delivery.queued_at.desc(), Delivery.id.desc())
    if after:
        query = query.where(tuple_(Delivery.queued_at, Delivery.id) < tuple_(*after))
    with tenant_session() as session:
        return list(session.scalars(query.limit(limit)))


# -- replay and relay -----------------------------------------------------------------------------------------

def _requeue(row: Delivery) -> None:
    row.status, row.generation, row.replays, row.attempts = "queued", row.generation + 1, row.replays + 1, 0
    row.sent_at = row.delivered_at = None
    row.updated_at = _now()  # queued_at stays: when the write was first asked for


def replay_delivery(delivery_id, *, actor: Actor) -> Delivery:
    """Send a failed or dead delivery again, as a new message (a new generation) of the same row."""
    with tenant_transaction() as session:
        row = session.get(Delivery, parse_delivery_id(delivery_id), with_for_update=True)
        if row is None:
            raise DeliveryNotFound(f"no delivery {delivery_id}")
        if row.status not in REPLAYABLE:
            raise DeliveryNotReplayable(f"delivery is {row.status}; only failed or dead deliveries are replayed")
        previous = row.status
        _requeue(row)
        audit.record(session, actor=actor, action="delivery.replayed", target_type="delivery",
                     target_id=str(row.id), details={"was": previous, "generation": row.generation})
    _send_after_commit([row])
    return row


def replay_deliveries(*, actor: Actor, status=REPLAYABLE, provider=None, connection_id=None, before=None,
                      limit: int = 500, dry_run: bool = False) -> int:
    """Replay up to `limit` failed/dead deliveries matching the filter, oldest first; answer how many."""
    statuses = [s for s in ([status] if isinstance(status, str) else status) if s in REPLAYABLE]
    if not statuses:
        raise Invalid("only failed or dead deliveries can be replayed")
    filters = dict(status=statuses, provider=provider, connection_id=connection_id, before=before)
    with tenant_transaction() as session:
        query = _filtered(select(Delivery), **filters).order_by(Delivery.queued_at, Delivery.id).limit(limit)
        rows = list(session.scalars(query.with_for_update(skip_locked=True)))
        if dry_run or not rows:
            return len(rows)
        for row in rows:
            _requeue(row)
        audit.record(session, actor=actor, action="delivery.bulk_replayed", target_type="delivery",
                     details={"count": len(rows), "status": statuses, "provider": provider,
                              "connection_id": str(connection_id) if connection_id else None,
                              "before": before.isoformat() if before else None,
                              "deliveries": [str(r.id) for r in rows[:100]]})
    _send_after_commit(rows)
    return len(rows)


def relay(*, limit: int = 500, min_age: timedelta = RELAY_MIN_AGE) -> int:
    """Send the current tenant's unsent deliveries: every group with a row older than `min_age`, oldest first,
    so a record's writes reach SQS in the order they were requested."""
    cutoff = _now() - min_age
    unsent = and_(Delivery.status == "queued", Delivery.sent_at.is_(None))
    stale_groups = select(Delivery.connection_id, Delivery.record_key).where(unsent, Delivery.queued_at <= cutoff)
    with tenant_transaction() as session:
        query = (select(Delivery).where(unsent, tuple_(Delivery.connection_id, Delivery.record_key).in_(stale_groups))
                 .order_by(Delivery.queued_at, Delivery.id).limit(limit).with_for_update(skip_locked=True))
        rows = list(session.scalars(query))
        try:
            sent = _send(current_tenant().slug, rows) if rows else []
        except Exception as exc:  # SQS is still away: the rows stay for the next run (other tenants go on)
            log.warning("outbound relay could not reach SQS: %s", exc)
            sent = []
        for row in sent:
            row.sent_at = _now()
    return len(sent)
