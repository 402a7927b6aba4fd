"""Standard Webhooks (standardwebhooks.com): HMAC over "id.timestamp.body", used for clients' own events."""
from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import timedelta

from connectors.base import (
    InboundRequest,
    MalformedPayload,
    VerificationFailed,
    WebhookEvent,
    WebhookScheme,
    b64,
    check_fresh,
    hmac_sha256,
    optional_str,
    parse_json,
    parse_timestamp,
    require_header,
    signature_matches,
)

TOLERANCE = timedelta(minutes=5)
SECRET_PREFIX = "whsec_"


class StandardWebhooksScheme(WebhookScheme):
    provider = "custom"
    dedup_horizon = timedelta(hours=24)

    def _verify(self, request: InboundRequest, secrets: Sequence[bytes], now: float) -> None:
        msg_id = require_header(request, "webhook-id")
        timestamp = require_header(request, "webhook-timestamp")
        signatures = v1_signatures(require_header(request, "webhook-signature"))
        check_fresh(parse_timestamp(timestamp), now, TOLERANCE)
        keys = [k for k in (signing_key(s) for s in secrets) if k]
        if not keys:
            raise VerificationFailed("no usable secret")
        message = f"{msg_id}.{timestamp}.".encode() + request.body
        expected = [b64(hmac_sha256(key, message)) for key in keys]
        if not any(signature_matches(sig, expected) for sig in signatures):
            raise VerificationFailed("signature mismatch")

    def events(self, request: InboundRequest) -> list[WebhookEvent]:
        msg_id = (request.header("webhook-id") or "").strip()
        if not msg_id:
            raise MalformedPayload("missing webhook-id header")
        body = parse_json(request.body)
        if not isinstance(body, dict):
            raise MalformedPayload("expected a JSON object")
        event_type = body.get("type")
        return [WebhookEvent(
            event_id=msg_id,
            event_type=event_type if isinstance(event_type, str) and event_type else "unknown",
            account_id=None,
            resource_id=None,
            occurred_at=optional_str(body.get("timestamp")) or request.header("webhook-timestamp"),
            payload=body,
        )]


def signing_key(secret: bytes) -> bytes | None:
    """The HMAC key is the base64 after "whsec_", decoded (the prefix is optional, as in the spec's libs)."""
    encoded = secret.removeprefix(SECRET_PREFIX.encode())
    try:
        return base64.b64decode(encoded, validate=True) or None
    except ValueError:
        return None


def v1_signatures(header: str) -> list[str]:
    # Other schemes (e.g. "v1a" asymmetric) may be listed alongside; only symmetric v1 is ours to check.
    entries = (entry.partition(",") for entry in header.split())
    return [sig for version, _, sig in entries if version == "v1" and sig]
