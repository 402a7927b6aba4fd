"""Inbound events of the calling tenant: list, read, replay."""
from __future__ import annotations

import marshmallow as ma
from flask import g
from flask.views import MethodView
from flask_smorest import Blueprint

from api.auth import access
from api.common import PageArgsSchema, newest_first_page, page_schema
from core.inbound import inbox

blp = Blueprint("events", __name__, url_prefix="/v1/events", description="Inbound events (the durable inbox).")


class EventSchema(ma.Schema):
    id = ma.fields.String()
    provider = ma.fields.String()
    provider_event_id = ma.fields.String()
    event_type = ma.fields.String()
    account_id = ma.fields.String(allow_none=True)
    resource_id = ma.fields.String(allow_none=True)
    occurred_at = ma.fields.String(allow_none=True)
    connection_id = ma.fields.String(allow_none=True)
    status = ma.fields.String()
    received_at = ma.fields.DateTime()
    replays = ma.fields.Integer()


class EventDetailSchema(EventSchema):
    headers = ma.fields.Dict()
    payload = ma.fields.Raw()


class EventQueryArgsSchema(PageArgsSchema):
    provider = ma.fields.String(load_default=None, validate=ma.validate.Length(max=32))
    status = ma.fields.String(load_default=None, validate=ma.validate.OneOf(
        ["received", "processed", "failed"]))
    event_type = ma.fields.String(load_default=None, validate=ma.validate.Length(max=128))


EventPageSchema = page_schema(EventSchema, "EventPageSchema")


class ReplaySchema(ma.Schema):
    event_id = ma.fields.String()
    jobs = ma.fields.List(ma.fields.String())


@blp.route("")
class Events(MethodView):
    @access("VIEWER")
    @blp.arguments(EventQueryArgsSchema, location="query")
    @blp.response(200, EventPageSchema)
    def get(self, args):
        """List events, newest first."""
        return newest_first_page(inbox.list_events, args, "received_at")


@blp.route("/<string:event_id>")
class EventById(MethodView):
    @access("VIEWER")
    @blp.response(200, EventDetailSchema)
    def get(self, event_id):
        """One event with its payload."""
        return inbox.get_event(event_id)


@blp.route("/<string:event_id>/replay")
class EventReplay(MethodView):
    @access("EDITOR", live=True)
    @blp.response(202, ReplaySchema)
    def post(self, event_id):
        """Run the event's workflows again, as new jobs."""
        jobs = inbox.replay_event(event_id, actor=g.actor)
        return {"event_id": event_id, "jobs": [str(j.id) for j in jobs]}
