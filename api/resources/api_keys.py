"""Tenant admins: API keys (`/v1/api-keys`); the secret is returned once, at creation."""
from __future__ import annotations

import marshmallow as ma
from flask import g
from flask.views import MethodView
from flask_smorest import Blueprint

from api.auth import access
from api.common import PageArgsSchema, decode_uuid_cursor, idempotent, page, page_schema
from core.tenants import apikeys

blp = Blueprint("api_keys", __name__, url_prefix="/v1/api-keys", description="Tenant API keys.")


class ApiKeySchema(ma.Schema):
    id = ma.fields.String(dump_only=True)
    name = ma.fields.String(dump_only=True)
    role = ma.fields.String(dump_only=True)
    environment = ma.fields.String(dump_only=True)
    prefix = ma.fields.Method("_display_prefix", dump_only=True)
    created_by = ma.fields.String(dump_only=True, allow_none=True)
    created_at = ma.fields.DateTime(dump_only=True)
    last_used_at = ma.fields.DateTime(dump_only=True, allow_none=True)
    revoked_at = ma.fields.DateTime(dump_only=True, allow_none=True)

    def _display_prefix(self, key):
        return f"zx_{key.environment}_{key.prefix}"


class ApiKeyCreateSchema(ma.Schema):
    name = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=100),
                            metadata={"example": "billing sync"})
    role = ma.fields.String(required=True, validate=ma.validate.OneOf(["ADMIN", "EDITOR", "VIEWER"]),
                            metadata={"example": "EDITOR"})
    environment = ma.fields.String(load_default="live", validate=ma.validate.OneOf(["live", "test"]))


class ApiKeyCreatedSchema(ApiKeySchema):
    secret = ma.fields.String(dump_only=True, metadata={"description": "The full key; shown only once."})


class ApiKeyQueryArgsSchema(PageArgsSchema):
    include_revoked = ma.fields.Boolean(load_default=False)


ApiKeyPageSchema = page_schema(ApiKeySchema, "ApiKeyPageSchema")


@blp.route("")
class ApiKeys(MethodView):
    @access("ADMIN")
    @blp.arguments(ApiKeyQueryArgsSchema, location="query")
    @blp.response(200, ApiKeyPageSchema)
    def get(self, args):
        """List this tenant's API keys (no secrets)."""
        rows = apikeys.list_api_keys(limit=args["limit"] + 1, after=decode_uuid_cursor(args["cursor"]),
                                     include_revoked=args["include_revoked"])
        return page(rows, args["limit"], lambda k: str(k.id))

    @access("ADMIN")
    @idempotent("tenant")
    @blp.arguments(ApiKeyCreateSchema)
    @blp.response(201, ApiKeyCreatedSchema)
    def post(self, data):
        """Create an API key; the response carries the secret, which is never shown again."""
        key, secret = apikeys.create_api_key(actor=g.actor, **data)
        key.secret = secret  # transient attribute, dumped once, never stored
        return key, 201


@blp.route("/<string:key_id>")
class ApiKeyById(MethodView):
    @access("ADMIN")
    @blp.response(204)
    def delete(self, key_id):
        """Revoke an API key; it stops working at once."""
        apikeys.revoke_api_key(key_id=key_id, actor=g.actor)
