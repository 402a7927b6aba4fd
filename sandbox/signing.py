"""Webhook deliveries signed the way each provider documents it, computed here independently of `connectors`."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Mapping


def _hmac(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def sign(provider: str, url: str, payload, secret: str, *, method: str = "POST", now: float | None = None,
         **options) -> tuple[bytes, dict[str, str]]:
    """The exact body bytes and headers the provider would send for `payload` to `url`."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload, separators=(",", ":")).encode()
    now = time.time() if now is None else now
    signer = {"xero": _xero, "hubspot": _hubspot, "shopify": _shopify, "asana": _asana,
              "salesforce": _standard, "custom": _standard}.get(provider)
    if signer is None:
        raise KeyError(provider)
    headers = {"Content-Type": "application/json", **signer(body, secret, url=url, method=method, now=now,
                                                             **options)}
    return body, headers


def _xero(body: bytes, secret: str, **_) -> dict[str, str]:
    # The webhook key signs the raw body: base64 HMAC-SHA256.
    return {"x-xero-signature": base64.b64encode(_hmac(secret.encode(), body)).decode()}


def _hubspot(body: bytes, secret: str, *, url: str, method: str, now: float, **_) -> dict[str, str]:
    # v3: base64 HMAC-SHA256 under the app's client secret of method + URI + body + timestamp (milliseconds).
    timestamp = str(int(now * 1000))
    message = method.upper().encode() + url.encode() + body + timestamp.encode()
    return {"X-HubSpot-Signature-v3": base64.b64encode(_hmac(secret.encode(), message)).decode(),
            "X-HubSpot-Request-Timestamp": timestamp}


def _shopify(body: bytes, secret: str, *, now: float, shop: str = "zixly-demo.myshopify.com",
             topic: str = "orders/create", webhook_id: str | None = None, api_version: str = "2025-10",
             **_) -> dict[str, str]:
    # The app's client secret signs the raw body: base64 HMAC-SHA256.
    triggered = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(now))
    return {"X-Shopify-Hmac-Sha256": base64.b64encode(_hmac(secret.encode(), body)).decode(),
            "X-Shopify-Webhook-Id": webhook_id or str(uuid.uuid4()), "X-Shopify-Shop-Domain": shop,
            "X-Shopify-Topic": topic, "X-Shopify-API-Version": api_version, "X-Shopify-Triggered-At": triggered}


def _asana(body: bytes, secret: str, **_) -> dict[str, str]:
    # The X-Hook-Secret from the handshake signs the raw body: hex HMAC-SHA256.
    return {"X-Hook-Signature": _hmac(secret.encode(), body).hex()}


def _standard(body: bytes, secret: str, *, now: float, msg_id: str | None = None, **_) -> dict[str, str]:
    # Standard Webhooks: key = base64-decoded part after "whsec_"; message "id.timestamp.body"; "v1,<base64>".
    key = base64.b64decode(secret.removeprefix("whsec_"))
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    timestamp = str(int(now))
    signature = base64.b64encode(_hmac(key, f"{msg_id}.{timestamp}.".encode() + body)).decode()
    return {"webhook-id": msg_id, "webhook-timestamp": timestamp, "webhook-signature": f"v1,{signature}"}


def xero_intent_to_receive(correct: bool, secret: str) -> tuple[bytes, dict[str, str]]:
    """Xero's intent-to-receive check: an empty event list, signed correctly once and wrongly once."""
    body = json.dumps({"events": [], "firstEventSequence": 0, "lastEventSequence": 0,
                       "entropy": uuid.uuid4().hex[:20].upper()}).encode()
    headers = _xero(body, secret if correct else secret + "-wrong")
    return body, {"Content-Type": "application/json", **headers}


def asana_handshake_headers(secret: str) -> Mapping[str, str]:
    return {"X-Hook-Secret": secret}
