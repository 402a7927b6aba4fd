"""Events (payload, replay: EDITOR), deliveries (dead letters, replay one or all: ADMIN; live over SSE) and
the audit log (ADMIN), over the services the API's /v1/events, /v1/deliveries and /v1/audit-log call."""
from __future__ import annotations

from flask import g, render_template, request

from api.resources.deliveries import DeliveryQueryArgsSchema
from api.resources.events import EventQueryArgsSchema
from console import forms, guard, live
from console.blueprints import tenant as blp
from console.guard import requires
from console.pages import done, render
from core.inbound import inbox
from core.outbound import service as outbound
from core.platform import audit

LIMIT = 50


def _query(schema, names) -> tuple[dict, dict]:
    data, errors = forms.parse(schema, request.args, names)
    return ({k: None for k in names} if errors else {k: data.get(k) for k in names}), errors


@blp.get("/events", endpoint="events")
@requires("VIEWER")
def events_page():
    filters, errors = _query(EventQueryArgsSchema(), ["status", "provider"])
    return render("events.html", status=422 if errors else 200, events=inbox.list_events(limit=LIMIT, **filters),
                  filters=filters, errors=errors)


@blp.get("/events/<event_id>")
@requires("VIEWER")
def event(event_id):
    return render("event.html", event=inbox.get_event(event_id))


@blp.post("/events/<event_id>/replay")
@requires("EDITOR")
def replay_event(event_id):
    started = inbox.replay_event(event_id, actor=guard.actor())
    return done(f"Replayed: {len(started)} job(s) started.", "console_tenant.event", event_id=event_id)


DELIVERY_FILTERS = ["status", "provider"]


def _delivery_rows(filters: dict) -> str:
    return render_template("partials/delivery_rows.html", deliveries=outbound.list_deliveries(limit=LIMIT,
                                                                                              **filters))


@blp.get("/deliveries", endpoint="deliveries")
@requires("VIEWER")
def deliveries_page():
    filters, errors = _query(DeliveryQueryArgsSchema(), DELIVERY_FILTERS)
    return render("deliveries.html", status=422 if errors else 200, rows_html=_delivery_rows(filters),
                  filters=filters, errors=errors, statuses=outbound.STATUSES, query=request.query_string)


@blp.get("/deliveries/stream")
@requires("VIEWER")
def deliveries_stream():
    filters, _ = _query(DeliveryQueryArgsSchema(), DELIVERY_FILTERS)
    return live.stream(g.console_tenant, lambda: (_delivery_rows(filters), False), event="rows",
                       alive=guard.still_signed_in)


@blp.post("/deliveries/<delivery_id>/replay")
@requires("ADMIN")
def replay_delivery(delivery_id):
    try:
        outbound.replay_delivery(delivery_id, actor=guard.actor())
    except outbound.DeliveryNotReplayable as exc:
        return done(f"Not replayed: {exc}.", "console_tenant.deliveries", kind="error")
    return done("Delivery queued again.", "console_tenant.deliveries")


@blp.post("/deliveries/replay-dead")
@requires("ADMIN")
def replay_dead():
    count = outbound.replay_deliveries(actor=guard.actor(), status=("dead",))
    return done(f"{count} dead letter(s) queued again.", "console_tenant.deliveries")


@blp.get("/audit-log", endpoint="audit_log")
@requires("ADMIN")
def audit_page():
    return render("audit.html", entries=audit.list_entries(limit=100))
