"""Staff: onboard and manage tenants (`/v1/staff/tenants`)."""
from __future__ import annotations

import marshmallow as ma
from flask import g, url_for
from flask.views import MethodView
from flask_smorest import Blueprint

from api.auth import STAFF, access
from api.common import PageArgsSchema, decode_cursor, idempotent, page, page_schema
from core.platform.validation import FullMatch
from core.tenants import service as tenants
from tenancy.context import SLUG_RE

blp = Blueprint("staff_tenants", __name__, url_prefix="/v1/staff/tenants",
                description="Zixly staff: create, change, suspend, archive and restore tenants.")


class TenantSchema(ma.Schema):
    slug = ma.fields.String(dump_only=True)
    name = ma.fields.String(dump_only=True)
    status = ma.fields.String(dump_only=True)
    plan = ma.fields.String(dump_only=True)
    shard = ma.fields.String(dump_only=True)
    schema_revision = ma.fields.String(dump_only=True, allow_none=True)
    failure_reason = ma.fields.String(dump_only=True, allow_none=True)
    admin_email = ma.fields.String(dump_only=True, allow_none=True)
    created_at = ma.fields.DateTime(dump_only=True)
    updated_at = ma.fields.DateTime(dump_only=True)


class TenantCreateSchema(ma.Schema):
    slug = ma.fields.String(required=True, validate=FullMatch(
        SLUG_RE, error="slug must be 3–40 characters: a lowercase letter, then lowercase letters, digits or '-'"),
        metadata={"example": "acme-plumbing"})
    name = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=200),
                            metadata={"example": "Acme Plumbing Ltd"})
    plan = ma.fields.String(load_default="free", validate=ma.validate.Length(min=1, max=32),
                            metadata={"example": "pro"})
    admin_email = ma.fields.Email(load_default=None, metadata={"example": "ops@acme-plumbing.example"})
    shard = ma.fields.String(load_default=None, validate=ma.validate.Length(min=1, max=40))


class TenantCreatedSchema(TenantSchema):
    api_key = ma.fields.String(dump_only=True, metadata={"description": "The first ADMIN key; shown once."})
    api_key_id = ma.fields.String(dump_only=True)


class TenantUpdateSchema(ma.Schema):
    class Meta:
        openapi = {"minProperties": 1}  # what _not_empty checks

    plan = ma.fields.String(validate=ma.validate.Length(min=1, max=32), metadata={"example": "enterprise"})
    status = ma.fields.String(validate=ma.validate.OneOf(["active", "suspended"]))

    @ma.validates_schema
    def _not_empty(self, data, **kwargs):
        if not data:
            raise ma.ValidationError("give at least one of: plan, status")


class TenantQueryArgsSchema(PageArgsSchema):
    status = ma.fields.String(load_default=None, validate=ma.validate.OneOf(
        ["provisioning", "active", "suspended", "archived", "failed", "erased"]))


TenantPageSchema = page_schema(TenantSchema, "TenantPageSchema")


@blp.route("")
class Tenants(MethodView):
    @access(STAFF)
    @blp.arguments(TenantQueryArgsSchema, location="query")
    @blp.response(200, TenantPageSchema)
    def get(self, args):
        """List tenants (cursor pagination)."""
        rows = tenants.list_tenants(limit=args["limit"] + 1, after_id=decode_cursor(args["cursor"], int),
                                    status=args["status"])
        return page(rows, args["limit"], lambda t: t.id)

    @access(STAFF)
    @idempotent("staff")
    @blp.arguments(TenantCreateSchema)
    @blp.response(201, TenantCreatedSchema, headers={"Location": {"schema": {"type": "string"}}})
    def post(self, data):
        """Create a tenant: schema provisioned and migrated; the first ADMIN API key is returned once."""
        tenant, key, secret = tenants.create_tenant(actor=g.actor, **data)
        body = {name: getattr(tenant, name) for name in TenantSchema().fields}
        body |= {"api_key": secret, "api_key_id": str(key.id)}
        return body, 201, {"Location": url_for("staff_tenants.TenantBySlug", slug=tenant.slug)}


@blp.route("/<string:slug>")
class TenantBySlug(MethodView):
    @access(STAFF)
    @blp.response(200, TenantSchema)
    def get(self, slug):
        """Read one tenant."""
        return tenants.get_tenant(slug)

    @access(STAFF)
    @blp.arguments(TenantUpdateSchema)
    @blp.response(200, TenantSchema)
    def patch(self, data, slug):
        """Change a tenant's plan, or suspend / resume it."""
        return tenants.update_tenant(slug, actor=g.actor, **data)

    @access(STAFF)
    @blp.response(200, TenantSchema)
    def delete(self, slug):
        """Archive a tenant: its requests get 410; the schema is kept and can be restored."""
        return tenants.archive_tenant(slug, actor=g.actor)


@blp.route("/<string:slug>/restore")
class TenantRestore(MethodView):
    @access(STAFF)
    @blp.response(200, TenantSchema)
    def post(self, slug):
        """Restore an archived tenant."""
        return tenants.restore_tenant(slug, actor=g.actor)
