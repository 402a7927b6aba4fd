"""Asana webhooks: X-Hook-Secret handshake, then hex HMAC-SHA256 of the body under that secret."""
from __future__ import annotations

from datetime import timedelta

from connectors.base import (
    BodyHmacScheme,
    Handshake,
    InboundRequest,
    MalformedPayload,
    WebhookEvent,
    optional_str,
    parse_json,
    stable_id,
)


class AsanaScheme(BodyHmacScheme):
    provider = "asana"
    dedup_horizon = timedelta(hours=24)
    signature_header = "X-Hook-Signature"
    hex_digest = True

    def handshake(self, request: InboundRequest) -> Handshake | None:
        secret = request.header("X-Hook-Secret")
        if not secret:
            return None
        # Echoing the secret confirms the subscription; the caller stores it to verify later deliveries.
        return Handshake(status=200, headers={"X-Hook-Secret": secret})

    def events(self, request: InboundRequest) -> list[WebhookEvent]:
        body = parse_json(request.body)
        if not isinstance(body, dict) or not isinstance(body.get("events"), list):
            raise MalformedPayload("expected an object with an events list")
        return [_event(item) for item in body["events"]]


def _event(item: object) -> WebhookEvent:
    resource = item.get("resource") if isinstance(item, dict) else None
    if not isinstance(resource, dict) or not resource.get("gid") or not item.get("action"):
        raise MalformedPayload("event lacks resource gid or action")
    return WebhookEvent(
        event_id=stable_id(resource["gid"], item["action"], item.get("created_at"),
                           _gid(item.get("user")), _field(item.get("change"))),
        event_type=f"{item['action']}:{resource.get('resource_type') or 'unknown'}",
        account_id=None,
        resource_id=str(resource["gid"]),
        occurred_at=optional_str(item.get("created_at")),
        payload=item,
    )


def _gid(ref: object) -> str | None:
    return ref.get("gid") if isinstance(ref, dict) else None


def _field(change: object) -> str | None:
    return change.get("field") if isinstance(change, dict) else None
