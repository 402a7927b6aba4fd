"""The outbound SQS FIFO queues: one per provider (and its dead-letter queue), one message group per record so a
record's writes stay in order, de-duplication ids per delivery generation, and the publisher that sends just-
committed deliveries (core.platform.publishing: breaker and relay). Messages carry ids only, never a token."""
from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from datetime import UTC, datetime

import boto3
from botocore.config import Config
from sqlalchemy import tuple_, update

from core.outbound.models import Delivery
from core.platform import aws, metrics
from core.platform.publishing import Publisher
from core.platform.runtime import settings
from tenancy.context import current_tenant
from tenancy.db import tenant_transaction

log = logging.getLogger("zixly.outbound")
_GROUP_SAFE = re.compile(r"[!-~]{1,255}")  # what SQS accepts in a MessageGroupId (printable ASCII, no space)

_clients: dict = {}
_urls: dict = {}
_lock = threading.Lock()


def sqs_client():
    """One SQS client per process (boto3 clients are thread-safe), with room for every consumer thread."""
    s = settings()
    key = (s.aws_endpoint_url, s.aws_region)
    with _lock:
        if key not in _clients:
            _clients[key] = boto3.client("sqs", region_name=s.aws_region, endpoint_url=s.aws_endpoint_url,
                                         config=Config(max_pool_connections=64, connect_timeout=2, read_timeout=30,
                                                       retries={"max_attempts": 2, "mode": "standard"}))
            _clients[key].meta.events.register("before-call.sqs", _count_call)
        return _clients[key]


def _count_call(model, **_) -> None:
    """Every SQS round trip is counted (zixly_sqs_calls_total): batching shows as fewer calls per delivery."""
    metrics.sqs_calls.labels(model.name).inc()


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


def send_rows(rows: list[Delivery]) -> list[Delivery]:
    """The current tenant's rows, sent in order (the publisher's transport)."""
    return _send(current_tenant().slug, rows) if rows else []


def mark_sent(rows: list[Delivery]) -> None:
    if rows:
        with tenant_transaction() as session:
            session.execute(update(Delivery).where(
                tuple_(Delivery.id, Delivery.generation).in_([(r.id, r.generation) for r in rows]),
                Delivery.sent_at.is_(None)).values(sent_at=_now()))


def _now() -> datetime:
    return datetime.now(UTC)


publisher = Publisher("outbound", send_rows, on_sent=mark_sent)
