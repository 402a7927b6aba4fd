"""Event subscriptions of the calling tenant (`/v1/subscriptions`, ADMIN): endpoints Zixly pushes signed events to
(Standard Webhooks), their attempt log, replay, a test event. The secret is shown once: at creation or rotation."""
from __future__ import annotations

import marshmallow as ma
from flask import g, url_for
from flask.views import MethodView
from flask_smorest import Blueprint

from api.auth import access
from api.common import JsonBoolean, PageArgsSchema, idempotent, newest_first_page, page_schema
from core.events import catalogue
from core.events.models import MESSAGE_STATUSES
from core.platform.validation import FullMatch
from core.subscriptions import service as subscriptions
from core.workflows.registry import WORKFLOWS

blp = Blueprint("subscriptions", __name__, url_prefix="/v1/subscriptions", description=(
    "Event subscriptions: Zixly POSTs each event to your HTTPS endpoint, signed per Standard Webhooks "
    "(`webhook-id`, `webhook-timestamp`, `webhook-signature`), at least once: de-duplicate on `webhook-id`. "
    "Order is not guaranteed (replays are sent in creation order). Retries back off over about 28 hours; an "
    "endpoint that keeps failing is disabled and your admins are told through Zixly's notifications. The event "
    "types and their bodies are listed under `x-webhooks`."))

OUTCOMES = ("delivered", "retrying", "failed", "gone", "refused")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_PORT = r"(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
# anchored: a JSON Schema pattern matches anywhere; the path and query are printable ASCII but for `#` and `\`
URL_PATTERN = (rf"^https?://(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9A-Fa-f:.]+\])(?::{_PORT})?"
               r'(?:[/?][!"$-\[\]-~]*)?$')
URL_RULES = [ma.validate.Length(min=1, max=2000), FullMatch(URL_PATTERN, error="must be an http(s) URL without "
                                                                                  "credentials or fragment")]
EVENT_TYPE = ma.fields.String(validate=ma.validate.OneOf(catalogue.EVENT_TYPES))


class Strict(ma.Schema):
    class Meta:
        unknown = ma.RAISE


class SubscriptionRecoverySchema(ma.Schema):
    since = ma.fields.DateTime(allow_none=True, metadata={"description": "The first message that failed."})
    failed_messages = ma.fields.Integer()
    replayed = ma.fields.Integer(metadata={"description": "How many were queued again (with `recover: true`)."})


class SubscriptionSchema(ma.Schema):
    id = ma.fields.String()
    url = ma.fields.String()
    description = ma.fields.String()
    event_types = ma.fields.List(ma.fields.String(metadata={"enum": list(catalogue.EVENT_TYPES)}))
    workflows = ma.fields.List(ma.fields.String(), metadata={"description": "Only events of these workflows."})
    connection_ids = ma.fields.List(ma.fields.String(), metadata={
        "description": "Only events of these connections."})
    enabled = ma.fields.Boolean()
    disabled_reason = ma.fields.String(allow_none=True, metadata={
        "description": "Why Zixly disabled it (null when enabled, or disabled by you)."})
    disabled_at = ma.fields.DateTime(allow_none=True)
    failing_since = ma.fields.DateTime(allow_none=True, metadata={
        "description": "Its first failed attempt since the last success."})
    created_at = ma.fields.DateTime()
    updated_at = ma.fields.DateTime()
    links = ma.fields.Method("_links")

    def _links(self, row):
        ident = str(row.id)
        return {"self": url_for("subscriptions.SubscriptionById", subscription_id=ident),
                "attempts": url_for("subscriptions.SubscriptionAttempts", subscription_id=ident)}


class SubscriptionUpdatedSchema(SubscriptionSchema):
    recovery = ma.fields.Nested(SubscriptionRecoverySchema, allow_none=True, metadata={
        "description": "On re-enabling a subscription Zixly disabled: what failed meanwhile (replay it with "
                       "`recover: true`, or POST …/replay with `since`)."})


class SubscriptionCreatedSchema(SubscriptionSchema):
    secret = ma.fields.String(metadata={"description": "The signing secret `whsec_…`; shown only once."})


class _Filters(Strict):
    workflows = ma.fields.List(ma.fields.String(validate=ma.validate.OneOf(list(WORKFLOWS))),
                               validate=ma.validate.Length(max=50))
    connection_ids = ma.fields.List(ma.fields.UUID(), validate=ma.validate.Length(max=50))
    description = ma.fields.String(validate=ma.validate.Length(max=500))


class SubscriptionCreateSchema(_Filters):
    url = ma.fields.String(required=True, validate=URL_RULES, metadata={
        "example": "https://hooks.example.com/zixly",
        "description": "Where to POST events: https (plain http only where the deployment allows it, for local "
                       "development), a host name or IP address, an optional port and path; no credentials or "
                       "fragment. It must resolve to public addresses only (checked now and at every delivery)."})
    event_types = ma.fields.List(EVENT_TYPE, required=True, validate=ma.validate.Length(min=1, max=20),
                                 metadata={"example": ["job.failed", "delivery.dead_lettered"]})
    enabled = JsonBoolean(load_default=True)


class SubscriptionPatchSchema(_Filters):
    url = ma.fields.String(validate=URL_RULES)
    event_types = ma.fields.List(EVENT_TYPE, validate=ma.validate.Length(min=1, max=20))
    enabled = JsonBoolean()
    recover = JsonBoolean(load_default=False, metadata={
        "description": "With enabled=true on a subscription Zixly disabled: replay what failed meanwhile."})

    class Meta:
        unknown = ma.RAISE
        example = {"enabled": True, "recover": True}


class SubscriptionQueryArgsSchema(PageArgsSchema):
    enabled = ma.fields.Boolean(load_default=None)
    event_type = ma.fields.String(load_default=None, validate=ma.validate.OneOf(catalogue.EVENT_TYPES))


class SubscriptionSecretSchema(ma.Schema):
    secret = ma.fields.String(metadata={"description": "The new signing secret; shown only once."})
    previous_valid_until = ma.fields.DateTime(metadata={
        "description": "Until then every delivery carries a signature with the previous secret too."})


class SubscriptionAttemptSchema(ma.Schema):
    id = ma.fields.String()
    message_id = ma.fields.String(metadata={"description": "The `webhook-id` (without `msg_`) of the message."})
    event_type = ma.fields.String()
    outcome = ma.fields.String(metadata={"enum": list(OUTCOMES)})
    status_code = ma.fields.Integer(allow_none=True, metadata={"description": "What the endpoint answered."})
    duration_ms = ma.fields.Integer()
    error = ma.fields.String(allow_none=True)
    response_body = ma.fields.String(allow_none=True, metadata={"description": "Its first 4 KiB."})
    attempted_at = ma.fields.DateTime()


class SubscriptionAttemptQueryArgsSchema(PageArgsSchema):
    outcome = ma.fields.String(load_default=None, validate=ma.validate.OneOf(OUTCOMES))
    message_id = ma.fields.UUID(load_default=None)


class SubscriptionReplaySchema(Strict):
    since = ma.fields.AwareDateTime(required=True, metadata={
        "description": "Every message that failed, created at or after this (e.g. `recovery.since`)."})
    until = ma.fields.AwareDateTime(load_default=None, metadata={"description": "… and before this."})


class SubscriptionReplayResultSchema(ma.Schema):
    count = ma.fields.Integer()


class SubscriptionMessageSchema(ma.Schema):
    id = ma.fields.String()
    event_type = ma.fields.String()
    status = ma.fields.String(metadata={"enum": list(MESSAGE_STATUSES)})
    attempts = ma.fields.Integer()
    created_at = ma.fields.DateTime()


SubscriptionPageSchema = page_schema(SubscriptionSchema, "SubscriptionPageSchema")
SubscriptionAttemptPageSchema = page_schema(SubscriptionAttemptSchema, "SubscriptionAttemptPageSchema")


@blp.route("")
class Subscriptions(MethodView):
    @access("ADMIN")
    @blp.arguments(SubscriptionQueryArgsSchema, location="query")
    @blp.response(200, SubscriptionPageSchema)
    def get(self, args):
        """List subscriptions, newest first (no secrets)."""
        return newest_first_page(subscriptions.list_subscriptions, args, "created_at")

    @access("ADMIN")
    @idempotent("tenant")
    @blp.arguments(SubscriptionCreateSchema)
    @blp.response(201, SubscriptionCreatedSchema)
    def post(self, data):
        """Subscribe an HTTPS endpoint to event types; the answer carries its signing secret, shown only once."""
        row, secret = subscriptions.create_subscription(actor=g.actor, **data)
        row.secret = secret  # transient, dumped once
        return row, 201


@blp.route("/<string:subscription_id>")
class SubscriptionById(MethodView):
    @access("ADMIN")
    @blp.response(200, SubscriptionSchema)
    def get(self, subscription_id):
        """One subscription."""
        return subscriptions.get_subscription(subscription_id)

    @access("ADMIN")
    @blp.arguments(SubscriptionPatchSchema)
    @blp.response(200, SubscriptionUpdatedSchema)
    def patch(self, data, subscription_id):
        """Change a subscription; re-enabling one Zixly disabled answers what failed meanwhile (`recovery`)."""
        return subscriptions.update_subscription(subscription_id, actor=g.actor, **data)

    @access("ADMIN")
    @blp.response(204)
    def delete(self, subscription_id):
        """Delete a subscription: nothing more is sent to it."""
        subscriptions.delete_subscription(subscription_id, actor=g.actor)


@blp.route("/<string:subscription_id>/rotate-secret")
class SubscriptionSecret(MethodView):
    @access("ADMIN")
    @blp.response(200, SubscriptionSecretSchema)
    def post(self, subscription_id):
        """A new signing secret (shown once); the previous one keeps signing for 24 hours (both signatures sent)."""
        _row, secret, until = subscriptions.rotate_secret(subscription_id, actor=g.actor)
        return {"secret": secret, "previous_valid_until": until}


@blp.route("/<string:subscription_id>/attempts")
class SubscriptionAttempts(MethodView):
    @access("ADMIN")
    @blp.arguments(SubscriptionAttemptQueryArgsSchema, location="query")
    @blp.response(200, SubscriptionAttemptPageSchema)
    def get(self, args, subscription_id):
        """The delivery log, newest first: each attempt's outcome, status code, duration and error."""
        return newest_first_page(lambda **kw: subscriptions.list_attempts(subscription_id, **kw), args,
                                 "attempted_at")


@blp.route("/<string:subscription_id>/replay")
class SubscriptionReplay(MethodView):
    @access("ADMIN")
    @blp.arguments(SubscriptionReplaySchema)
    @blp.response(202, SubscriptionReplayResultSchema)
    def post(self, data, subscription_id):
        """Send again every message that failed since a time, one after another in the order they were created."""
        return {"count": subscriptions.replay(subscription_id, actor=g.actor, **data)}


@blp.route("/<string:subscription_id>/messages/<string:message_id>/replay")
class SubscriptionMessageReplay(MethodView):
    @access("ADMIN")
    @blp.response(202, SubscriptionReplayResultSchema)
    def post(self, subscription_id, message_id):
        """Send one message again (delivered or failed), under the same `webhook-id`."""
        return {"count": subscriptions.replay(subscription_id, actor=g.actor, message_id=message_id)}


@blp.route("/<string:subscription_id>/test")
class SubscriptionTest(MethodView):
    @access("ADMIN")
    @blp.response(202, SubscriptionMessageSchema)
    def post(self, subscription_id):
        """Send a signed `subscription.test` event to this endpoint now (see its attempts for the outcome)."""
        return subscriptions.send_test(subscription_id, actor=g.actor)
