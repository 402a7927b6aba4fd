"""Novu adapter: the trigger request Zixly sends, and sending it through the official `novu-py` SDK.

Pure: plain values in, plain values out (no Flask, database or tenant context). The SDK's own retries are
switched off — it would retry for up to an hour with a fresh idempotency key each time — because the worker
retries with backoff and the same `transactionId`, which is what keeps a retry from notifying twice.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import httpx
from novu_py import Novu, models
from novu_py.utils import BackoffStrategy, RetryConfig

NOVU_CLOUD_US = "https://api.novu.co"
NOVU_CLOUD_EU = "https://eu.api.novu.co"
# Novu workflow ids (trigger identifiers) Zixly triggers; each must exist in the Novu environment.
WORKFLOWS = ("job-failed", "delivery-dead-lettered", "connection-reauth-required", "tenant-welcome",
             "api-key-created", "subscription-disabled")
MAX_RECIPIENTS = 100  # Novu's limit per trigger
NO_RETRIES = RetryConfig("none", BackoffStrategy(0, 0, 1.0, 0), False)
_RETRYABLE_STATUS = {408, 409, 425, 429}  # 409: Novu is still processing this idempotency key
_DUPLICATE = "transactionId property is not unique"


class NovuError(Exception):
    """Base of the adapter's errors; `status` is Novu's HTTP status when there was an answer."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class NovuUnavailable(NovuError):
    """Novu did not take the trigger now (timeout, connection error, 5xx, 429): try again later."""


class NovuRejected(NovuError):
    """Novu refused the trigger in a way a retry cannot fix (bad key, unknown workflow, invalid body)."""


@dataclass(frozen=True)
class Delivered:
    transaction_id: str
    status: str  # Novu's trigger status ("processed"), or "duplicate" when Novu already had this transaction


def transaction_id(tenant: str, event: str, subject: str) -> str:
    """Deterministic per notification: the same tenant, event and subject always give the same id."""
    digest = hashlib.sha256("\x1f".join((tenant, event, subject)).encode()).hexdigest()
    return f"zx-{digest[:40]}"


# Ids name the tenant first and are unambiguous: a slug has neither ':' nor '_', so no tenant can build another
# tenant's subscriber id or topic key (with '-' as the separator, tenant "a" + topic "b-admins" would be tenant
# "a-b"'s admins). Topic keys use '_' rather than ':' to stay within the characters every Novu version accepts.
def subscriber(tenant: str, user_id: str, *, email: str | None = None, name: str | None = None) -> dict:
    """A subscriber named by tenant and user, with what Novu needs to create it on first use."""
    person = {"subscriberId": f"zixly:{tenant}:{user_id}"}
    if email:
        person["email"] = email
    first, _, last = (name or "").strip().partition(" ")
    if first:
        person["firstName"] = first
    if last.strip():
        person["lastName"] = last.strip()
    return person


def topic(tenant: str, key: str) -> dict:
    """A per-tenant topic (e.g. the tenant's admins); the key never names another tenant."""
    return {"type": "Topic", "topicKey": f"zixly_{tenant}_{key}"}


def trigger_request(*, workflow: str, tenant: str, to: list[dict], payload: dict, transaction_id: str) -> dict:
    """The JSON body of `POST /v1/events/trigger`, with Novu's context set to the tenant."""
    if workflow not in WORKFLOWS:
        raise ValueError(f"unknown Novu workflow {workflow!r}")
    return {"name": workflow, "to": list(to)[:MAX_RECIPIENTS], "payload": payload,
            "transactionId": transaction_id, "context": {"tenant": tenant}}


class NovuClient:
    """One configured SDK client (thread-safe; keep one per process and settings)."""

    def __init__(self, *, api_key: str, server_url: str = NOVU_CLOUD_US, timeout: float = 10.0):
        if not api_key:
            raise ValueError("a Novu API key is required")
        self._sdk = Novu(secret_key=api_key, server_url=server_url.rstrip("/"), retry_config=NO_RETRIES,
                         timeout_ms=int(timeout * 1000))

    def trigger(self, request: dict, *, idempotency_key: str) -> Delivered:
        """Send one trigger; exactly one HTTP request. Raises NovuUnavailable or NovuRejected.

        `idempotency_key` should differ per attempt: Novu caches an error answer under its key for 24 h, so
        reusing one key would replay the 5xx. Duplicates are stopped by the `transactionId` in the body.
        """
        dto = models.TriggerEventRequestDto.model_validate(request)
        try:
            answer = self._sdk.trigger(trigger_event_request_dto=dto, idempotency_key=idempotency_key,
                                       retries=NO_RETRIES)
        except (httpx.TransportError, models.NoResponseError) as exc:  # refused, reset, timed out
            raise NovuUnavailable(f"{type(exc).__name__}: {exc}"[:500]) from exc
        except models.NovuError as exc:
            status, body = exc.status_code, (exc.body or "")[:300]
            if status == 400 and _DUPLICATE in body:  # an earlier attempt got through: delivered
                return Delivered(request["transactionId"], "duplicate")
            error = NovuUnavailable if status >= 500 or status in _RETRYABLE_STATUS else NovuRejected
            raise error(f"Novu answered {status}: {body}", status) from exc
        result = answer.result
        if not result.acknowledged:
            raise NovuRejected(f"Novu did not acknowledge the trigger: status {result.status}")
        status = getattr(result.status, "value", result.status)
        if status not in ("processed", None):
            raise NovuRejected(f"Novu answered status {status}: {'; '.join(result.error or [])}"[:500])
        return Delivered(result.transaction_id or request["transactionId"], status or "processed")

