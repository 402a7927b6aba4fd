"""Shopify webhooks: base64 HMAC-SHA256 of the body under the app secret; one event per delivery."""
from __future__ import annotations

from datetime import timedelta

from connectors.base import BodyHmacScheme, InboundRequest, MalformedPayload, WebhookEvent, parse_json


class ShopifyScheme(BodyHmacScheme):
    provider = "shopify"
    # Shopify retries a failed delivery for up to 4 hours, so ids older than that cannot come back.
    dedup_horizon = timedelta(hours=4)
    signature_header = "X-Shopify-Hmac-Sha256"

    def events(self, request: InboundRequest) -> list[WebhookEvent]:
        webhook_id = (request.header("X-Shopify-Webhook-Id") or "").strip()
        if not webhook_id:
            raise MalformedPayload("missing X-Shopify-Webhook-Id header")
        body = parse_json(request.body)
        if not isinstance(body, dict):
            raise MalformedPayload("expected a JSON object")
        resource_id = body.get("id")
        return [WebhookEvent(
            event_id=webhook_id,
            event_type=request.header("X-Shopify-Topic") or "unknown",
            account_id=request.header("X-Shopify-Shop-Domain"),
            resource_id=None if resource_id is None else str(resource_id),
            occurred_at=request.header("X-Shopify-Triggered-At"),
            payload=body,
        )]
