"""HubSpot webhooks: v3 timestamped HMAC signature, with the legacy v1/v2 SHA-256 signatures as fallback."""
from __future__ import annotations

import hashlib
import re
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

V3_HEADER = "X-HubSpot-Signature-v3"
TIMESTAMP_HEADER = "X-HubSpot-Request-Timestamp"
LEGACY_HEADER = "X-HubSpot-Signature"
VERSION_HEADER = "X-HubSpot-Signature-Version"
TOLERANCE = timedelta(minutes=5)

# HubSpot signs the URI with exactly these escapes decoded (and no others), per its v3 validation docs.
_V3_DECODED = {"%3A": ":", "%2F": "/", "%3F": "?", "%40": "@", "%21": "!", "%24": "$",
               "%27": "'", "%28": "(", "%29": ")", "%2A": "*", "%2C": ",", "%3B": ";"}
_V3_ESCAPE = re.compile("|".join(_V3_DECODED), re.IGNORECASE)


class HubSpotScheme(WebhookScheme):
    provider = "hubspot"
    dedup_horizon = timedelta(hours=24)
    # v1/v2 carry no timestamp, so a captured request replays forever; set False to require v3.
    accept_legacy_signatures = True

    def _verify(self, request: InboundRequest, secrets: Sequence[bytes], now: float) -> None:
        if request.header(V3_HEADER) is not None or not self.accept_legacy_signatures:
            _verify_v3(request, secrets, now)
        else:
            _verify_legacy(request, secrets)

    def events(self, request: InboundRequest) -> list[WebhookEvent]:
        body = parse_json(request.body)
        if not isinstance(body, list):
            raise MalformedPayload("expected a JSON array of events")
        return [_event(item) for item in body]


def v3_uri(url: str) -> str:
    return _V3_ESCAPE.sub(lambda m: _V3_DECODED[m.group(0).upper()], url)


def _verify_v3(request: InboundRequest, secrets: Sequence[bytes], now: float) -> None:
    provided = require_header(request, V3_HEADER)
    timestamp = require_header(request, TIMESTAMP_HEADER)
    check_fresh(parse_timestamp(timestamp) / 1000, now, TOLERANCE)
    message = (request.method.upper() + v3_uri(request.url)).encode() + request.body + timestamp.encode()
    if not signature_matches(provided, [b64(hmac_sha256(key, message)) for key in secrets]):
        raise VerificationFailed("signature mismatch")


def _verify_legacy(request: InboundRequest, secrets: Sequence[bytes]) -> None:
    provided = require_header(request, LEGACY_HEADER)
    version = require_header(request, VERSION_HEADER).lower()
    if version == "v1":
        suffix = request.body
    elif version == "v2":
        suffix = (request.method.upper() + request.url).encode() + request.body
    else:
        raise VerificationFailed("unsupported signature version")
    expected = [hashlib.sha256(key + suffix).hexdigest() for key in secrets]
    if not signature_matches(provided.lower(), expected):
        raise VerificationFailed("signature mismatch")


def _event(item: object) -> WebhookEvent:
    if not isinstance(item, dict) or item.get("eventId") is None:
        raise MalformedPayload("event lacks eventId")
    return WebhookEvent(
        event_id=str(item["eventId"]),
        event_type=str(item.get("subscriptionType") or "unknown"),
        account_id=optional_str(item.get("portalId")),
        resource_id=optional_str(item.get("objectId")),
        occurred_at=optional_str(item.get("occurredAt")),
        payload=item,
    )
