"""Rendering a console page: the layout's context (who is signed in, flashes, CSRF token, role checks)."""
from __future__ import annotations

from flask import redirect, render_template, request, url_for

from console import guard, sessions

NAV = (("Overview", "console_tenant.overview", "VIEWER"), ("Connections", "console_tenant.connections", "VIEWER"),
       ("Workflows", "console_tenant.workflows", "VIEWER"), ("Jobs", "console_tenant.jobs", "VIEWER"),
       ("Events", "console_tenant.events", "VIEWER"), ("Deliveries", "console_tenant.deliveries", "VIEWER"),
       ("API keys", "console_tenant.api_keys", "ADMIN"), ("Notifications", "console_tenant.notifications", "ADMIN"),
       ("Audit log", "console_tenant.audit_log", "ADMIN"))
STAFF_NAV = (("Tenants", "console_staff.tenants", None), ("Fleet", "console_staff.fleet", None))


def render(template: str, status: int = 200, **context):
    session = guard.current_session()
    flashes = sessions.pop_flashes(session) if session else []
    nav = () if session is None else (STAFF_NAV if session.kind == "staff" else
                                      [item for item in NAV if guard.can(item[2])])
    return render_template(template, session=session, flashes=flashes, can=guard.can, nav=nav,
                           csrf_field=guard.CSRF_FIELD, csrf_token=session.csrf if session else "",
                           endpoint=request.endpoint, **context), status


def done(message: str, endpoint: str, kind: str = "success", **values):
    """After a change: say what happened on the next page (303, so a reload does not post again)."""
    sessions.flash(guard.current_session(), message, kind)
    return redirect(url_for(endpoint, **values), 303)
