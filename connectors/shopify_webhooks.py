"""Shopify webhooks: everything Zixly trusts about a delivery comes from the body the HMAC covers.

Shopify signs only the raw body (base64 HMAC-SHA256 under the app's client secret); its headers
(`X-Shopify-Shop-Domain`, `X-Shopify-Webhook-Id`, `X-Shopify-Topic`, `X-Shopify-Triggered-At`) are not signed,
so anyone holding one captured delivery could change them. Hence:

- **Routing** (the account) is the shop the body names: `myshopify_domain` in the Shop resource (`shop/update`,
  `app/uninstalled`) and `shop_domain` in the mandatory compliance topics (`customers/data_request`,
  `customers/redact`, `shop/redact`). Other topics' bodies (orders, products, customers, ...) name no shop: their
  events carry no account, and the app-level URL refuses them; they belong on the connection's own endpoint,
  whose secret token is the routing.
- **De-duplication** is a hash of the signed body under its topic: a replay with a fresh webhook id is a
  duplicate. The topic stays part of the id because Shopify sends byte-identical bodies under different topics
  (an order created paid comes as `orders/create` and `orders/paid`); the price is that a captured body can be
  relabelled once per other topic (at the app-level URL only to another topic of the table below).
- **Replays are bounded in time** by the body's own `updated_at` (else `created_at`): older than `REPLAY_WINDOW`
  is refused. A body with neither (`orders/delete` is `{"id": ...}`; the compliance topics) cannot be bounded;
  the body hash still makes its replay a duplicate for as long as the inbox keeps events.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import datetime, timedelta

from connectors.base import (
    BodyHmacScheme,
    InboundRequest,
    MalformedPayload,
    VerificationFailed,
    WebhookEvent,
    check_fresh,
    parse_json,
    stable_id,
)
from connectors.errors import InvalidOptions
from connectors.hosts import validate_shop_domain

# The topics whose documented body names the shop, and the field that does.
SHOP_FIELD = {
    "shop/update": "myshopify_domain",
    "app/uninstalled": "myshopify_domain",
    "customers/data_request": "shop_domain",
    "customers/redact": "shop_domain",
    "shop/redact": "shop_domain",
}
# Shopify retries a failed delivery for up to 4 hours after the event; a day leaves room for its own delays.
REPLAY_WINDOW = timedelta(hours=24)
_TIMESTAMP_FIELDS = ("updated_at", "created_at")


class ShopifyScheme(BodyHmacScheme):
    provider = "shopify"
    app_level = True
    # A delivery is accepted for REPLAY_WINDOW after its body's timestamp, so its id must be remembered as long.
    dedup_horizon = REPLAY_WINDOW
    signature_header = "X-Shopify-Hmac-Sha256"

    def _verify(self, request: InboundRequest, secrets: Sequence[bytes], now: float) -> None:
        super()._verify(request, secrets, now)
        signed_at = signed_timestamp(_object_or_none(request.body))
        if signed_at is not None:
            check_fresh(signed_at.timestamp(), now, REPLAY_WINDOW)

    def events(self, request: InboundRequest) -> list[WebhookEvent]:
        body = parse_json(request.body)
        if not isinstance(body, dict):
            raise MalformedPayload("expected a JSON object")
        topic = (request.header("X-Shopify-Topic") or "").strip() or "unknown"
        resource_id = body.get("id")
        signed_at = signed_timestamp(body)
        return [WebhookEvent(
            event_id=stable_id("shopify", topic, hashlib.sha256(request.body).hexdigest()),
            event_type=topic,
            account_id=signed_shop(topic, body),
            resource_id=None if resource_id is None else str(resource_id),
            occurred_at=None if signed_at is None else signed_at.isoformat(),
            payload=body,
        )]


def signed_shop(topic: str, body: dict) -> str | None:
    """The shop the signed body names for this topic, or None when the topic's body names none."""
    field = SHOP_FIELD.get(topic)
    if field is None:
        return None
    try:
        return validate_shop_domain(body.get(field))
    except InvalidOptions:
        raise MalformedPayload(f"a {topic} body names its shop in {field}, and this one names no valid shop") from None


def signed_timestamp(body: dict | None) -> datetime | None:
    """The body's own `updated_at` (else `created_at`), as an aware datetime; None when it has neither."""
    if body is None:
        return None
    for name in _TIMESTAMP_FIELDS:
        raw = body.get(name)
        if raw is None:
            continue
        try:
            stamp = datetime.fromisoformat(raw) if isinstance(raw, str) else None
        except ValueError:
            stamp = None
        if stamp is None or stamp.tzinfo is None:
            raise VerificationFailed(f"unreadable {name} timestamp")
        return stamp
    return None


def _object_or_none(raw: bytes) -> dict | None:
    """The body as a JSON object, or None (a signed body that is not one is refused later, as malformed)."""
    try:
        body = json.loads(raw)
    except (ValueError, TypeError, RecursionError):
        return None
    return body if isinstance(body, dict) else None
