"""Outbound deliveries of the calling tenant: what was written to which provider, how it went; replay."""
from __future__ import annotations

import marshmallow as ma
from flask import g, url_for
from flask.views import MethodView
from flask_smorest import Blueprint

from api.auth import access
from api.common import (
    JsonBoolean,
    JsonInteger,
    PageArgsSchema,
    newest_first_page,
    page_schema,
)
from core.outbound import service as outbound
from core.platform import aws

blp = Blueprint("deliveries", __name__, url_prefix="/v1/deliveries",
                description="Outbound deliveries: each write to a provider, sent in order through its queue.")


class DeliverySchema(ma.Schema):
    id = ma.fields.String()
    provider = ma.fields.String()
    connection_id = ma.fields.String()
    record_key = ma.fields.String()
    operation = ma.fields.String()
    dedup_key = ma.fields.String()
    job_id = ma.fields.String(allow_none=True)
    status = ma.fields.String(metadata={"enum": list(outbound.STATUSES)})
    attempts = ma.fields.Integer(metadata={"description": "Calls made since the delivery was last (re)queued."})
    replays = ma.fields.Integer()
    last_error = ma.fields.String(allow_none=True)
    response_status = ma.fields.Integer(allow_none=True, metadata={"description": "The provider's HTTP status."})
    queued_at = ma.fields.DateTime()
    sent_at = ma.fields.DateTime(allow_none=True, metadata={"description": "When it was handed to SQS."})
    delivered_at = ma.fields.DateTime(allow_none=True)
    updated_at = ma.fields.DateTime()
    links = ma.fields.Method("_links")

    def _links(self, row):
        return {"self": url_for("deliveries.DeliveryById", delivery_id=str(row.id))}


class DeliveryDetailSchema(DeliverySchema):
    args = ma.fields.Dict(metadata={"description": "The arguments of the provider operation."})
    response = ma.fields.Raw(allow_none=True, metadata={"description": "What the provider answered."})


class DeliveryQueryArgsSchema(PageArgsSchema):
    status = ma.fields.String(load_default=None, validate=ma.validate.OneOf(outbound.STATUSES))
    provider = ma.fields.String(load_default=None, validate=ma.validate.OneOf(aws.OUTBOUND_PROVIDERS))
    connection_id = ma.fields.UUID(load_default=None)
    job_id = ma.fields.UUID(load_default=None)


DeliveryPageSchema = page_schema(DeliverySchema, "DeliveryPageSchema")


class DeliveryReplayFilterSchema(ma.Schema):
    class Meta:
        unknown = ma.RAISE

    status = ma.fields.List(ma.fields.String(validate=ma.validate.OneOf(outbound.REPLAYABLE)),
                            load_default=lambda: ["dead"], validate=ma.validate.Length(min=1),
                            metadata={"description": "Which deliveries: dead (default), failed, or both."})
    provider = ma.fields.String(load_default=None, allow_none=True, validate=ma.validate.OneOf(aws.OUTBOUND_PROVIDERS))
    connection_id = ma.fields.UUID(load_default=None, allow_none=True)
    before = ma.fields.AwareDateTime(load_default=None, allow_none=True,
                                     metadata={"description": "Only those queued before this."})
    limit = JsonInteger(load_default=500, validate=ma.validate.Range(min=1, max=1000))
    dry_run = JsonBoolean(load_default=False, metadata={"description": "Count them, replay nothing."})


class DeliveryReplayResultSchema(ma.Schema):
    count = ma.fields.Integer()
    dry_run = ma.fields.Boolean()


@blp.route("")
class Deliveries(MethodView):
    @access("VIEWER")
    @blp.arguments(DeliveryQueryArgsSchema, location="query")
    @blp.response(200, DeliveryPageSchema)
    def get(self, args):
        """List deliveries, newest first (filters: status, provider, connection, job)."""
        return newest_first_page(outbound.list_deliveries, args, "queued_at")


@blp.route("/<string:delivery_id>")
class DeliveryById(MethodView):
    @access("VIEWER")
    @blp.response(200, DeliveryDetailSchema)
    def get(self, delivery_id):
        """One delivery with its arguments and the provider's answer."""
        return outbound.get_delivery(delivery_id)


@blp.route("/<string:delivery_id>/replay")
class DeliveryReplay(MethodView):
    @access("ADMIN", live=True)
    @blp.response(202, DeliverySchema)
    def post(self, delivery_id):
        """Send a failed or dead delivery again (after whatever was delivered to the record since)."""
        return outbound.replay_delivery(delivery_id, actor=g.actor)


@blp.route("/replay")
class DeliveriesReplay(MethodView):
    @access("ADMIN", live=True)
    @blp.arguments(DeliveryReplayFilterSchema, required=False)
    @blp.response(202, DeliveryReplayResultSchema)
    def post(self, data):
        """Replay the failed or dead deliveries a filter selects (oldest first, up to `limit`). Without a body:
        every failed or dead delivery, up to the default limit; `dry_run` counts without sending."""
        count = outbound.replay_deliveries(actor=g.actor, **data)
        return {"count": count, "dry_run": data["dry_run"]}
