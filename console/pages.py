"""Rendering a console page: the layout's context (who is signed in, flashes, CSRF token, role checks)."""
from __future__ import annotations

from flask import redirect, render_template, request, url_for

from console import guard, sessions

NAV = (("Overview", "console_tenant.overview"), ("Connections", "console_tenant.connections"),
       ("Workflows", "console_tenant.workflows"), ("Jobs", "console_tenant.jobs"),
       ("API keys", "console_tenant.api_keys"))
STAFF_NAV = (("Tenants", "console_staff.tenants"), ("Fleet", "console_staff.fleet"))


def render(template: str, status: int = 200, **context):
    session = guard.current_session()
    flashes = sessions.pop_flashes(session) if session else []
    nav = () if session is None else (STAFF_NAV if session.kind == "staff" else NAV)
    return render_template(template, session=session, flashes=flashes, can=guard.can, nav=nav,
                           csrf_field=guard.CSRF_FIELD, csrf_token=session.csrf if session else "",
                           endpoint=request.endpoint, **context), status


def done(message: str, endpoint: str, kind: str = "success", **values):
    """After a change: say what happened on the next page (303, so a reload does not post again)."""
    sessions.flash(guard.current_session(), message, kind)
    return redirect(url_for(endpoint, **values), 303)
