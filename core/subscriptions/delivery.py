"""Delivering messages to their subscription's endpoint (a worker task): claim, sign, POST, record.

A task claims its message and up to BATCH - 1 more due messages of the same subscription in one statement, sends
them one after another under one tenant slot, and settles the 2xx answers together in one statement; the batch
stops at the first other answer (settled on its own) or after BATCH_SECONDS, and what it did not try is released
untouched (pending, attempt count as before) with a new task. A replay claims only the message it names.

Invariants. A message is sent by one claim at a time (pending and due, or `sending` whose lease lapsed: a dead
worker's message is sent again — at least once, under the same `webhook-id`). Every attempt is logged with its
outcome. A 2xx ends it; a 410 fails it and disables the subscription at once; anything else is retried on the
schedule (core.subscriptions.schedule, Retry-After honoured) and given up on when it is spent. An endpoint that
keeps failing (N messages given up on in a row, or failing continuously for days) is disabled and the tenant's
admins are told through Novu, never through the failing endpoint. At most `subscription_tenant_concurrency`
deliveries of one tenant are in flight at once (core.subscriptions.slots); a delivery that finds none free is
put back a moment later without occupying a worker.
"""
from __future__ import annotations

import json
import logging
import random
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import urllib3
from sqlalchemy import func, update

from connectors.destinations import post
from connectors.errors import Unresolvable, UnsafeAddress
from core.events.models import (
    DELIVERED,
    FAILED,
    PENDING,
    Subscription,
)
from core.events import recorder, sealing
from core.events.recorder import DELIVER_WEBHOOK
from core.notify.service import notify
from core.platform import crypto, metrics, outbox
from core.platform.queue import celery_app
from core.platform.runtime import settings
from core.subscriptions import schedule, signing, slots, statements
from core.subscriptions.service import policy
from tenancy.context import current_tenant
from tenancy.db import tenant_autocommit, tenant_transaction

log = logging.getLogger("zixly.subscriptions")
ERROR_CHARS = 500
USER_AGENT = "Zixly-Webhooks/1.0"
LEASE_MARGIN = 10.0  # seconds a claim outlives the longest attempt (connect + read timeouts)
BATCH = 20  # messages of one subscription one task claims and sends (one claim, one settle for the 2xx answers)
BATCH_SECONDS = 1.0  # a batch takes no next message after this long: a slow endpoint holds back no more than that


@dataclass(frozen=True)
class Claimed:
    id: uuid.UUID
    subscription_id: uuid.UUID
    event_type: str
    data: dict
    created_at: datetime
    attempts: int
    url: str
    secrets_sealed: str
    failing_since: datetime | None


@dataclass(frozen=True)
class Result:
    outcome: str  # delivered | retrying | failed | gone | refused
    status_code: int | None = None
    error: str | None = None
    body: str | None = None
    retry_after: float | None = None




def deliver(message_id) -> str:
    """The task: deliver one message if it is due, and with it up to BATCH - 1 more of its subscription's due
    messages (deliver_holding_slot); answers what happened to this one."""
    config = settings()
    token = slots.take(config.subscription_tenant_concurrency, _lease(config, BATCH))
    if token is None:
        _put_back(message_id)
        metrics.webhook_attempts.labels("paced").inc()
        return "paced"
    try:
        return deliver_holding_slot(message_id, batch=BATCH)
    finally:
        slots.give_back(token)


def _lease(config, batch: int) -> float:
    """How long a claim is held: its longest attempt, after the batch's time budget when it is one of several."""
    budget = BATCH_SECONDS if batch > 1 else 0.0
    return config.subscription_connect_timeout + config.subscription_timeout + LEASE_MARGIN + budget


def deliver_in_order(message_ids: list[str]) -> list[str]:
    """A replay: each message after the one before (creation order), each under one of the tenant's slots (waited
    for, up to a lease: an order cannot be kept by putting a message back)."""
    config = settings()
    lease = _lease(config, 1)
    outcomes = []
    for message_id in message_ids:
        token, deadline = None, time.monotonic() + lease
        while token is None and time.monotonic() < deadline:
            token = slots.take(config.subscription_tenant_concurrency, lease)
            if token is None:
                time.sleep(0.1)
        try:
            outcomes.append(deliver_holding_slot(message_id))
        finally:
            if token is not None:
                slots.give_back(token)
    return outcomes


def _put_back(message_id) -> None:
    try:
        celery_app.send_task(DELIVER_WEBHOOK, args=[str(message_id)], countdown=random.uniform(0.2, 0.6),
                             retry=False, ignore_result=True)
    except Exception as exc:  # the broker is away: the sweeper sends the message once it is overdue
        log.warning("could not put back webhook %s: %s", message_id, exc)


def deliver_holding_slot(message_id, *, batch: int = 1) -> str:
    """Claim the message (and, with batch > 1, up to batch - 1 more due messages of its subscription) in one
    statement and send them one after another over the destination's kept-alive connection. The batch stops at
    the first answer that is not a 2xx (that message is settled on its own, with the schedule, 410 and disabling)
    or once BATCH_SECONDS have passed; what it did not try is released, each with a new task. The 2xx answers are
    settled together in one statement."""
    config = settings()
    try:
        ident = uuid.UUID(str(message_id))
    except ValueError:
        return "missing"
    with tenant_autocommit() as connection:
        rows = connection.execute(statements.CLAIM, {"message_id": ident, "lease": int(_lease(config, batch)),
                                           "limit": max(1, batch), "others": batch > 1}).mappings().all()
    if not rows:  # delivered, given up, not due, held by another claim, or its subscription is off
        return "not-due"
    claimed = [Claimed(**row) for row in rows]
    outcomes: dict[uuid.UUID, str] = {}
    delivered: list[tuple[Claimed, Result, int]] = []
    untried: list[Claimed] = []
    began = time.monotonic()
    try:
        for index, message in enumerate(claimed):
            if index and time.monotonic() - began >= BATCH_SECONDS:
                untried = claimed[index:]
                break
            started = time.monotonic()
            result = _send(message, config)
            duration = int((time.monotonic() - started) * 1000)
            if result.outcome == DELIVERED:
                delivered.append((message, result, duration))
                continue
            untried = claimed[index + 1:]
            _settle_delivered(delivered)  # before this failure, as they happened (it may disable the subscription)
            outcomes.update((done.id, DELIVERED) for done, _, _ in delivered)
            delivered = []
            outcomes[message.id] = _settle(message, result, duration, config)
            break
        _settle_delivered(delivered)
        outcomes.update((done.id, DELIVERED) for done, _, _ in delivered)
    finally:
        _release(untried)  # also when settling failed: what was never sent need not wait for its lease
    outcomes.update((message.id, "released") for message in untried)
    return outcomes.get(ident, "not-due")


def _settle_delivered(delivered: list[tuple[Claimed, Result, int]]) -> None:
    if not delivered:
        return
    with tenant_autocommit() as connection:
        connection.execute(statements.SETTLE_DELIVERED, {
            "b_subscription_id": delivered[0][0].subscription_id,
            "b_ids": [m.id for m, _, _ in delivered], "b_claimed_attempts": [m.attempts for m, _, _ in delivered],
            "b_codes": [r.status_code for _, r, _ in delivered], "b_durations": [d for _, _, d in delivered],
            "b_bodies": [r.body for _, r, _ in delivered],
            "b_event_types": [m.event_type for m, _, _ in delivered]})
    metrics.webhook_attempts.labels(DELIVERED).inc(len(delivered))
    now = datetime.now(UTC)
    for message, _, _ in delivered:
        metrics.webhook_latency.observe(max(0.0, (now - message.created_at).total_seconds()))


def _release(untried: list[Claimed]) -> None:
    if not untried:
        return
    with tenant_autocommit() as connection:
        row = connection.execute(statements.RELEASE, {"b_ids": [m.id for m in untried],
                                            "b_claimed_attempts": [m.attempts for m in untried]}).mappings().one()
    outbox.publish(recorder.messages(row["queued"]))


def body_of(claimed: Claimed) -> bytes:
    stamp = claimed.created_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return json.dumps({"type": claimed.event_type, "timestamp": stamp, "data": claimed.data},
                      separators=(",", ":"), sort_keys=True).encode()


def _send(claimed: Claimed, config) -> Result:
    body = body_of(claimed)
    if len(body) > config.subscription_max_payload_bytes:
        return Result("refused", error=f"payload of {len(body)} bytes exceeds the limit of "
                                       f"{config.subscription_max_payload_bytes}")
    try:
        secrets = [item["secret"] for item in signing.valid(sealing.open_secrets(claimed.subscription_id,
                                                                                 claimed.secrets_sealed))]
    except (crypto.DecryptionFailed, crypto.KeyringError) as exc:  # a retired data key: nothing can be signed
        log.error("subscription %s: its secret cannot be opened: %s", claimed.subscription_id, exc)
        return Result("refused", error="the subscription's signing secret cannot be opened (data keys)")
    msg_id, timestamp = f"msg_{claimed.id.hex}", int(time.time())
    headers = {"content-type": "application/json", "user-agent": USER_AGENT, "webhook-id": msg_id,
               "webhook-timestamp": str(timestamp),
               "webhook-signature": signing.signature_header(secrets, msg_id, timestamp, body)}
    try:
        answer = post(claimed.url, body, headers, policy())
    except Unresolvable:
        return Result("retrying", error="the host did not resolve")
    except UnsafeAddress as exc:
        return Result("retrying", error="refused by the SSRF guard: " + "; ".join(exc.errors.values()))
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        return Result("retrying", error=f"{type(exc).__name__}: {exc}"[:ERROR_CHARS])
    if 200 <= answer.status < 300:
        return Result(DELIVERED, answer.status, body=answer.body)
    if answer.status == 410:
        return Result("gone", answer.status, error="the endpoint answered 410 Gone", body=answer.body)
    wait = schedule.retry_after(answer.headers.get("retry-after")) if answer.status in (429, 503) else None
    return Result("retrying", answer.status, error=f"HTTP {answer.status}", body=answer.body, retry_after=wait)


def _settle(claimed: Claimed, result: Result, duration: int, config) -> str:
    outcome, delay = result.outcome, None
    if outcome == "retrying":
        delay = schedule.next_delay(config.subscription_retry_schedule, claimed.attempts, result.retry_after)
        if delay is None:
            outcome = FAILED
    if outcome in ("gone", "refused"):
        outcome_status = FAILED
    else:
        outcome_status = {DELIVERED: DELIVERED, FAILED: FAILED, "retrying": PENDING}[outcome]
    countdown = min(delay or 0.0, config.broker_visibility_timeout / 2)
    requeue = delay is not None and delay <= config.broker_visibility_timeout / 2  # longer: the sweeper sends it
    error = result.error
    if outcome == FAILED:
        error = f"gave up after {claimed.attempts} attempts; last: {result.error or '-'}"
    with tenant_autocommit() as connection:
        row = connection.execute(statements.SETTLE, {f"p_{k}": v for k, v in {
            "id": claimed.id, "subscription_id": claimed.subscription_id, "claimed_attempts": claimed.attempts,
            "status": outcome_status, "outcome": outcome, "code": result.status_code, "duration_ms": duration,
            "error": error[:ERROR_CHARS] if error else None, "body": result.body, "event_type": claimed.event_type,
            "delay": delay, "countdown": countdown, "ok": outcome == DELIVERED,
            "gave_up": outcome_status == FAILED, "requeue": requeue,
            "endpoint": outcome != "refused"}.items()}).mappings().one()
    outbox.publish(recorder.messages(row["queued"], countdown=countdown))
    metrics.webhook_attempts.labels(outcome).inc()
    if outcome == DELIVERED:
        metrics.webhook_latency.observe(max(0.0, (datetime.now(UTC) - claimed.created_at).total_seconds()))
    reason = _disable_reason(claimed, outcome, row["consecutive_failures"], config)
    if reason is not None:
        disable(claimed.subscription_id, reason=reason, kind="gone" if outcome == "gone" else "failing")
    return outcome


def _disable_reason(claimed: Claimed, outcome: str, failures: int | None, config) -> str | None:
    if outcome == "gone":
        return "the endpoint answered 410 Gone"
    if outcome in (DELIVERED, "refused"):  # refused: our limit, not the endpoint's failure
        return None
    if failures is not None and failures >= config.subscription_disable_after_messages:
        return f"{failures} messages in a row could not be delivered"
    since = claimed.failing_since
    if since is not None and datetime.now(UTC) - since >= timedelta(seconds=config.subscription_disable_after_seconds):
        return f"the endpoint has been failing since {since.isoformat()}"
    return None


def disable(subscription_id, *, reason: str, kind: str) -> bool:
    """Disable the subscription (if it still is enabled) and tell the tenant's admins through Novu."""
    with tenant_transaction() as session:
        row = session.execute(update(Subscription).where(Subscription.id == subscription_id,
                                                         Subscription.enabled.is_(True))
                              .values(enabled=False, disabled_reason=reason, disabled_at=func.now())
                              .returning(Subscription.url, Subscription.disabled_at, Subscription.failing_since)
                              ).first()
    if row is None:
        return False
    metrics.webhook_subscriptions_disabled.labels(kind).inc()
    log.warning("subscription %s of %s disabled: %s", subscription_id, current_tenant().slug, reason)
    notify(event="subscription-disabled", subject=f"subscription:{subscription_id}:{row.disabled_at.isoformat()}",
           payload={"subscription_id": str(subscription_id), "url": row.url, "reason": reason,
                    "failing_since": row.failing_since.isoformat() if row.failing_since else None,
                    "disabled_at": row.disabled_at.isoformat()})
    return True

