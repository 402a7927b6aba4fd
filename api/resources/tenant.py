"""The caller's own tenant (`/v1/tenant`) and its audit log (`/v1/audit-log`)."""
from __future__ import annotations

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Blueprint

from api.auth import access
from api.common import PageArgsSchema, decode_cursor, page, page_schema
from core.platform import audit
from core.tenants import plans

blp = Blueprint("tenant", __name__, url_prefix="/v1", description="The calling tenant.")


class LimitsSchema(ma.Schema):
    requests_per_minute = ma.fields.Integer()
    key_requests_per_minute = ma.fields.Integer()
    webhook_requests_per_minute = ma.fields.Integer(
        metadata={"description": "Verified deliveries a minute to the tenant's own hook endpoints, all of them "
                  "together; beyond it a delivery is a 429 with Retry-After (app-level hooks are not counted)."})
    max_connections = ma.fields.Integer(metadata={"description": "Connections the tenant may have at once."})
    max_hook_endpoints = ma.fields.Integer(metadata={"description": "Webhook endpoints (one per connection) the "
                                                     "tenant may have at once."})
    retention_days = ma.fields.Integer(metadata={"description": "Days finished jobs (with their steps), events, "
                                                 "deliveries and notifications are kept."})
    max_subscriptions = ma.fields.Integer(metadata={"description": "Event subscriptions the plan allows."})


class CurrentTenantSchema(ma.Schema):
    slug = ma.fields.String()
    name = ma.fields.String()
    plan = ma.fields.String()
    status = ma.fields.String()
    limits = ma.fields.Nested(LimitsSchema)


class AuditEntrySchema(ma.Schema):
    id = ma.fields.Integer()
    at = ma.fields.DateTime()
    actor_type = ma.fields.String()
    actor_id = ma.fields.String()
    action = ma.fields.String()
    target_type = ma.fields.String(allow_none=True)
    target_id = ma.fields.String(allow_none=True)
    details = ma.fields.Dict()
    request_id = ma.fields.String(allow_none=True)


class AuditQueryArgsSchema(PageArgsSchema):
    action = ma.fields.String(load_default=None, validate=ma.validate.Length(max=64))


AuditPageSchema = page_schema(AuditEntrySchema, "AuditPageSchema")


@blp.route("/tenant")
class CurrentTenant(MethodView):
    @access("VIEWER")
    @blp.response(200, CurrentTenantSchema)
    def get(self):
        """The calling tenant: slug, name, plan and its limits."""
        return plans.describe_current_tenant()


@blp.route("/audit-log")
class AuditLog(MethodView):
    @access("ADMIN")
    @blp.arguments(AuditQueryArgsSchema, location="query")
    @blp.response(200, AuditPageSchema)
    def get(self, args):
        """Who did what in this tenant, newest first."""
        rows = audit.list_entries(limit=args["limit"] + 1, before_id=decode_cursor(args["cursor"], int),
                                  action=args["action"])
        return page(rows, args["limit"], lambda e: e.id)
