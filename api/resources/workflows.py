"""Workflows of the calling tenant: what exists, what is enabled, and each one's settings."""
from __future__ import annotations

import marshmallow as ma
from flask import g
from flask.views import MethodView
from flask_smorest import Blueprint

from api.auth import access
from api.common import JsonBoolean, JsonInteger
from core.workflows import settings as workflow_settings

blp = Blueprint("workflows", __name__, url_prefix="/v1/workflows",
                description="Automations between connected systems, and their per-tenant settings.")


class TriggerSchema(ma.Schema):
    provider = ma.fields.String()
    event_types = ma.fields.List(ma.fields.String())


class WorkflowSchema(ma.Schema):
    name = ma.fields.String()
    description = ma.fields.String()
    roles = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.String(),
                           metadata={"description": "Role -> the provider its connection must be."})
    trigger = ma.fields.Nested(TriggerSchema, allow_none=True, metadata={"description": "Null: runs on a schedule."})
    scheduled = ma.fields.Boolean()
    enabled = ma.fields.Boolean()
    connections = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.String())
    mappings = ma.fields.Dict()
    event_types = ma.fields.List(ma.fields.String())
    schedule_seconds = ma.fields.Integer(allow_none=True)
    next_run_at = ma.fields.DateTime(allow_none=True)
    max_attempts = ma.fields.Integer()
    updated_at = ma.fields.DateTime(allow_none=True)


class WorkflowListSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(WorkflowSchema))


class WorkflowPutSchema(ma.Schema):
    enabled = JsonBoolean()
    connections = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.UUID(),
                                 metadata={"description": "Role -> connection id."})
    mappings = ma.fields.Dict(keys=ma.fields.String())
    event_types = ma.fields.List(ma.fields.String(validate=ma.validate.Length(min=1, max=128)),
                                 validate=ma.validate.Length(max=50))
    schedule_seconds = JsonInteger(allow_none=True, validate=ma.validate.Range(min=60, max=86400))
    max_attempts = JsonInteger(validate=ma.validate.Range(min=1, max=20))

    class Meta:
        example = {"enabled": True, "connections": {"source": "6f1c…", "target": "0b7d…"},
                   "mappings": {"deal_stage": "closedwon"}}


@blp.route("")
class Workflows(MethodView):
    @access("VIEWER")
    @blp.response(200, WorkflowListSchema)
    def get(self):
        """Every workflow Zixly offers, with this tenant's settings."""
        return {"items": workflow_settings.list_workflows()}


@blp.route("/<string:name>")
class WorkflowByName(MethodView):
    @access("VIEWER")
    @blp.response(200, WorkflowSchema)
    def get(self, name):
        """One workflow and this tenant's settings for it."""
        return workflow_settings.get_workflow(name)

    @access("ADMIN", live=True)
    @blp.arguments(WorkflowPutSchema)
    @blp.response(200, WorkflowSchema)
    def put(self, data, name):
        """Set the workflow's settings (fields left out keep their value)."""
        return workflow_settings.put_workflow(name, data, actor=g.actor)
