"""Staff pages: tenants (onboard with plan and shard — the first admin key shown once —, suspend, resume,
archive, restore) and fleet status (revisions, quarantined tenants, schema pool, shards). Staff sessions only."""
from __future__ import annotations

from flask import request

from api.resources.staff_tenants import TenantCreateSchema
from console import forms, guard
from console.blueprints import staff as blp
from console.pages import done, render
from core.tenants import service as tenants
from tenancy import pool, provisioning, shards
from tenancy.db import get_router
from tenancy.fleet import fleet_status

FIELDS = ["slug", "name", "plan", "admin_email", "shard"]
PAGE = 200  # the newest tenants first: the ones staff are onboarding (the oldest were shown first, so a fleet of
# more than PAGE tenants hid every new one)
ACTIONS = {"suspend": "suspended", "resume": "resumed", "archive": "archived", "restore": "restored"}


def _page(*, status=200, errors=None, values=None, created=None):
    return render("staff_tenants.html", status=status, tenants=tenants.list_tenants(limit=PAGE, newest_first=True),
                  fields=forms.fields_of(TenantCreateSchema(), FIELDS), errors=errors or {}, values=values or {},
                  created=created, shards=shards.list_shards(get_router()))


@blp.get("/tenants", endpoint="tenants")
def tenants_page():
    return _page()


@blp.post("/tenants")
def onboard():
    data, errors = forms.parse(TenantCreateSchema(), request.form, FIELDS)
    if errors:
        return _page(status=422, errors=errors, values=request.form)
    try:
        tenant, key, secret = tenants.create_tenant(actor=guard.actor(), **data)
    except provisioning.TenantExists as exc:
        return _page(status=409, errors={"slug": str(exc) or "a tenant with this slug exists"}, values=request.form)
    except provisioning.UnknownPlan as exc:
        return _page(status=422, errors={"plan": str(exc)}, values=request.form)
    except provisioning.UnknownShard as exc:
        return _page(status=422, errors={"shard": str(exc)}, values=request.form)
    return _page(status=201, created={"tenant": tenant, "secret": secret})


@blp.post("/tenants/<slug>/<action>")
def change(slug, action):
    if action not in ACTIONS:
        return done(f"Unknown action {action!r}.", "console_staff.tenants", kind="error")
    who = guard.actor()
    try:
        if action in ("suspend", "resume"):
            tenants.update_tenant(slug, actor=who, status="suspended" if action == "suspend" else "active")
        elif action == "archive":
            tenants.archive_tenant(slug, actor=who)
        else:
            tenants.restore_tenant(slug, actor=who)
    except provisioning.InvalidTransition as exc:
        return done(f"{slug}: {exc}", "console_staff.tenants", kind="error")
    return done(f"Tenant {slug} {ACTIONS[action]}.", "console_staff.tenants")


@blp.get("/fleet")
def fleet():
    router = get_router()
    return render("fleet.html", status_=fleet_status(router), pool=sorted(pool.counts(router).items()),
                  shards=shards.list_shards(router))
