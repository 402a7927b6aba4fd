"""The event types a subscription may name, each with the JSON Schema of its `data` (published in the spec, as
OpenAPI 3.0 schema objects: `nullable` rather than a type list).

Every delivery's body is `{"type": <type>, "timestamp": <when it was recorded, RFC 3339>, "data": {…}}`, the
Standard Webhooks payload shape. A type's `data` only ever gains optional members (receivers must ignore
unknown ones); a member is never removed or retyped without a new type name.
"""
from __future__ import annotations

JOB_COMPLETED = "job.completed"
JOB_FAILED = "job.failed"
DELIVERY_DEAD_LETTERED = "delivery.dead_lettered"
CONNECTION_REAUTH_REQUIRED = "connection.reauth_required"
CONNECTION_CONNECTED = "connection.connected"
EVENT_RECEIVED = "event.received"
TEST = "subscription.test"  # sent by the "send test event" action only; nobody subscribes to it

_UUID = {"type": "string", "format": "uuid"}
_UUID_OR_NULL = {"type": "string", "format": "uuid", "nullable": True}
_TIME = {"type": "string", "format": "date-time"}
_TEXT = {"type": "string", "maxLength": 500}


def _object(description: str, required: dict, optional: dict | None = None) -> dict:
    return {"type": "object", "description": description, "required": sorted(required),
            "properties": {**required, **(optional or {})}, "additionalProperties": True}


DATA_SCHEMAS: dict[str, dict] = {
    JOB_COMPLETED: _object("A job finished successfully; its result is at GET /v1/jobs/{job_id}.", {
        "job_id": _UUID, "workflow": {"type": "string"}, "attempts": {"type": "integer"}, "finished_at": _TIME},
        {"event_id": _UUID_OR_NULL}),
    JOB_FAILED: _object("A job failed for good (out of attempts, or a permanent error).", {
        "job_id": _UUID, "workflow": {"type": "string"}, "attempts": {"type": "integer"}, "error": _TEXT,
        "failed_at": _TIME}, {"event_id": _UUID_OR_NULL}),
    DELIVERY_DEAD_LETTERED: _object("A write to a provider ran out of attempts (replay: POST /v1/deliveries/{id}"
                                    "/replay).", {
        "delivery_id": _UUID, "provider": {"type": "string"}, "connection_id": _UUID, "reason": _TEXT},
        {"job_id": _UUID_OR_NULL}),
    CONNECTION_REAUTH_REQUIRED: _object("A connection's grant is gone; an admin must connect it again.", {
        "connection_id": _UUID, "provider": {"type": "string"}, "reason": _TEXT}),
    CONNECTION_CONNECTED: _object("A connection was authorised and is active.", {
        "connection_id": _UUID, "provider": {"type": "string"}},
        {"account_id": {"type": "string", "nullable": True}}),
    EVENT_RECEIVED: _object("A provider's webhook event was verified and kept (GET /v1/events/{event_id}).", {
        "event_id": _UUID, "provider": {"type": "string"}, "event_type": {"type": "string"}},
        {"connection_id": _UUID_OR_NULL}),
}
TEST_SCHEMA = _object("Sent by POST /v1/subscriptions/{id}/test: proves the endpoint verifies our signature.", {
    "subscription_id": _UUID, "message": {"type": "string"}})

EVENT_TYPES = tuple(DATA_SCHEMAS)


def envelope_schema(event_type: str, data: dict) -> dict:
    """The JSON Schema of a whole delivery body of `event_type`."""
    return {"type": "object", "required": ["type", "timestamp", "data"], "properties": {
        "type": {"type": "string", "enum": [event_type]}, "timestamp": _TIME, "data": data}}


def spec_catalogue() -> dict[str, dict]:
    """type -> schema of its body, for the OpenAPI document."""
    return {**{t: envelope_schema(t, s) for t, s in DATA_SCHEMAS.items()}, TEST: envelope_schema(TEST, TEST_SCHEMA)}
