"""Standard Webhooks signing (standardwebhooks.com): `v1,` + base64 HMAC-SHA256 of "id.timestamp.body" under the
base64 key after `whsec_`, one signature per secret still valid (both during a rotation's grace period).

A subscription's secrets are sealed at rest under the data keys (core.events.sealing).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import UTC, datetime, timedelta


PREFIX = "whsec_"
KEY_BYTES = 24


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()


def first_secrets(secret: str) -> list[dict]:
    return [{"secret": secret, "expires_at": None}]


def rotated(items: list[dict], new: str, *, grace: timedelta, now: datetime | None = None) -> list[dict]:
    """The new secret first; the ones still valid keep signing until `grace` from now (never longer than they
    already had); expired ones are dropped."""
    now = now or datetime.now(UTC)
    until = now + grace
    kept = []
    for item in valid(items, now=now):
        expires = datetime.fromisoformat(item["expires_at"]) if item["expires_at"] else until
        kept.append({"secret": item["secret"], "expires_at": min(expires, until).isoformat()})
    return [{"secret": new, "expires_at": None}, *kept]


def valid(items: list[dict], *, now: datetime | None = None) -> list[dict]:
    now = now or datetime.now(UTC)
    return [i for i in items if not i.get("expires_at") or datetime.fromisoformat(i["expires_at"]) > now]


def signature_header(secret_values: list[str], msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return " ".join(
        "v1," + base64.b64encode(hmac.new(base64.b64decode(s[len(PREFIX):]), signed, hashlib.sha256).digest()).decode()
        for s in secret_values)
