"""Requesting a write to a provider: recorded once per `dedup_key` (committed before it is sent), sent to the
provider's queue after commit — unless an earlier write to the same record still waits for the relay, which
then sends both in order — and waited for by the job that asked."""
from __future__ import annotations

import json
import time
import uuid

from sqlalchemy import exists, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import aliased

from connectors.oauth import Connector
from connectors.registry import CONNECTORS
from core.connections.models import Connection
from core.outbound import queues
from core.outbound.models import Delivery
from core.outbound.service import FINAL, get_delivery
from core.platform import aws
from core.platform.errors import Invalid
from core.platform.ids import parse_uuid
from tenancy.db import tenant_transaction


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


def request(*, provider: str, connection_id: uuid.UUID, record_key: str, operation: str, args: dict,
            dedup_key: str, job_id: uuid.UUID | None = None) -> uuid.UUID:
    """Record a write (once per `dedup_key`) and send it to the provider's queue after commit."""
    _check(provider, operation, args, dedup_key, record_key)
    connection_id = parse_uuid(connection_id, Invalid, "connection_id must be a UUID")
    job_id = job_id and parse_uuid(job_id, Invalid, "job_id must be a UUID")
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
        queues.publisher.after_commit([row])
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


