"""Notification settings (ADMIN): per event, on or off, the tenant's admins, extra topics; validated by the
API's EventSettingSchema. Named users set through the API are kept as they are."""
from __future__ import annotations

from flask import request

from api.resources.notifications import EventSettingSchema
from console import guard
from console.blueprints import tenant as blp
from console.guard import requires
from console.pages import done, render
from core.notify import settings as notify_settings


def _topics(raw: str) -> list[str]:
    return [t.strip() for t in raw.split(",") if t.strip()]


@blp.get("/notifications", endpoint="notifications")
@requires("ADMIN")
def notifications_page(errors=None, values=None, status=200):
    return render("notifications.html", status=status, settings=notify_settings.get_settings(),
                  events=notify_settings.EVENTS, errors=errors or {}, values=values)


@blp.post("/notifications")
@requires("ADMIN")
def save_notifications():
    current, changes, errors = notify_settings.get_settings(), {}, {}
    for event in notify_settings.EVENTS:
        data = {"enabled": f"{event}.enabled" in request.form, "admins": f"{event}.admins" in request.form,
                "topics": _topics(request.form.get(f"{event}.topics", "")), "users": current[event]["users"]}
        found = EventSettingSchema().validate(data)
        if found:
            errors |= {f"{event}.{field}": str(message) for field, message in found.items()}
        else:
            changes[event] = EventSettingSchema().load(data)
    if errors:
        return notifications_page(errors=errors, values=request.form, status=422)
    notify_settings.update_settings(changes, actor=guard.actor())
    return done("Notification settings saved.", "console_tenant.notifications")
