"""Xero webhooks: base64 HMAC-SHA256 of the body under the webhook key; one delivery may span tenants."""
from __future__ import annotations

from datetime import timedelta

from connectors.base import (
    BodyHmacScheme,
    InboundRequest,
    MalformedPayload,
    WebhookEvent,
    parse_json,
    stable_id,
)

_IDENTIFYING = ("tenantId", "resourceId", "eventType", "eventCategory", "eventDateUtc")


class XeroScheme(BodyHmacScheme):
    provider = "xero"
    dedup_horizon = timedelta(hours=24)
    signature_header = "x-xero-signature"

    def events(self, request: InboundRequest) -> list[WebhookEvent]:
        body = parse_json(request.body)
        if not isinstance(body, dict) or "events" not in body:
            raise MalformedPayload("expected an object with an events list")
        # Intent-to-receive deliveries carry no events; some tools render that as null rather than [].
        raw = [] if body["events"] is None else body["events"]
        if not isinstance(raw, list):
            raise MalformedPayload("events is not a list")
        return [_event(item) for item in raw]


def _event(item: object) -> WebhookEvent:
    if not isinstance(item, dict) or any(item.get(k) in (None, "") for k in _IDENTIFYING):
        raise MalformedPayload("event lacks its identifying fields")
    # Xero's docs show both "Update" and "UPDATE"; the type is normalised, the id hashes the raw values.
    return WebhookEvent(
        event_id=stable_id(*(item[k] for k in _IDENTIFYING)),
        event_type=f"{item['eventType']}:{item['eventCategory']}".upper(),
        account_id=str(item["tenantId"]),
        resource_id=str(item["resourceId"]),
        occurred_at=str(item["eventDateUtc"]),
        payload=item,
    )
