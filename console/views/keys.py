"""API keys (ADMIN only, as in the API): create (the secret shown once, on the answer page), revoke."""
from __future__ import annotations

from flask import request

from api.resources.api_keys import ApiKeyCreateSchema
from console import forms, guard
from console.blueprints import tenant as blp
from console.guard import requires
from console.pages import done, render
from core.tenants import apikeys

FIELDS = ["name", "role", "environment"]


def _page(*, status=200, errors=None, values=None, created=None):
    return render("api_keys.html", status=status, keys=apikeys.list_api_keys(limit=200),
                  fields=forms.fields_of(ApiKeyCreateSchema(), FIELDS), errors=errors or {}, values=values or {},
                  created=created)


@blp.get("/api-keys")
@requires("ADMIN")
def api_keys():
    return _page()


@blp.post("/api-keys")
@requires("ADMIN")
def create_key():
    data, errors = forms.parse(ApiKeyCreateSchema(), request.form, FIELDS)
    if errors:
        return _page(status=422, errors=errors, values=request.form)
    try:
        key, secret = apikeys.create_api_key(actor=guard.actor(), **data)
    except apikeys.TooManyKeys as exc:
        return _page(status=409, errors={"_schema": str(exc)}, values=request.form)
    return _page(status=201, created={"key": key, "secret": secret})


@blp.post("/api-keys/<key_id>/revoke")
@requires("ADMIN")
def revoke_key(key_id):
    key = apikeys.revoke_api_key(key_id=key_id, actor=guard.actor())
    return done(f"Key {key.name!r} revoked; it stops working at once.", "console_tenant.api_keys")
