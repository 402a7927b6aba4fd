"""Who is signed in to the console and what they may do, decided before any console view runs.

Invariants: every page of the tenant area needs a signed-in tenant user whose tenant is active (checked on
each request: a suspended or archived tenant's users are signed out at their next request) and at least the
role its view declares with `@requires` (a view that declares none needs ADMIN: fail closed); every staff
page needs a staff session. Every state-changing request (anything but GET/HEAD) carries the session's CSRF
token and comes from this site's origin (Origin, else Referer); otherwise it is refused and nothing changes.
The tenant context is set here for the request and cleared after it.
"""
from __future__ import annotations

import hmac
from urllib.parse import urlsplit

from flask import abort, current_app, g, redirect, request, url_for

from api.auth import RANK
from console import sessions
from core.platform.actors import Actor
from core.platform.runtime import settings
from tenancy.context import reset_tenant, set_tenant
from tenancy.provisioning import load_tenant_ref

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
CSRF_FIELD = "csrf_token"


def requires(role: str):
    """The least tenant role a console view needs (VIEWER < EDITOR < ADMIN)."""
    if role not in RANK:
        raise ValueError(role)

    def mark(fn):
        fn._console_role = role
        return fn

    return mark


def current_session() -> sessions.ConsoleSession | None:
    if "console_session" not in g:
        g.console_session = sessions.load(request.cookies.get(sessions.COOKIE))
    return g.console_session


def actor() -> Actor:
    session = current_session()
    return Actor(type=session.kind, id=session.subject, request_id=g.get("request_id"))


def can(role: str) -> bool:
    """Whether the signed-in tenant user has at least `role` (templates hide what they may not do)."""
    session = current_session()
    return session is not None and session.kind == "user" and RANK[session.role] >= RANK[role]


def _allowed_origins() -> set[str]:
    origins = {request.host_url.rstrip("/")}
    base = settings().public_base_url
    if base:
        parts = urlsplit(base)
        origins.add(f"{parts.scheme}://{parts.netloc}")
    return origins


def _same_origin() -> bool:
    origin = request.headers.get("Origin")
    if origin is None and request.referrer:
        parts = urlsplit(request.referrer)
        origin = f"{parts.scheme}://{parts.netloc}"
    return origin is not None and origin in _allowed_origins()


def check_form() -> None:
    """A state-changing request must come from our origin and carry the session's CSRF token."""
    if request.method in SAFE_METHODS:
        return
    if not _same_origin():
        abort(403, "This form was sent from another site (its Origin is not this console's); nothing changed.")
    session = current_session()
    sent = request.form.get(CSRF_FIELD, "")
    if session is None or not sent or not hmac.compare_digest(sent, session.csrf):
        abort(403, "This form's security token is missing or out of date; reload the page and try again. "
                   "Nothing changed.")


def _to_login():
    if request.method in SAFE_METHODS:
        return redirect(url_for("console_auth.login", next=request.full_path.rstrip("?")))
    abort(401, "Your session has ended; sign in again.")


def sign_out_response(message: str | None = None):
    session = current_session()
    if session is not None:
        sessions.destroy(session)
    response = redirect(url_for("console_auth.login", signed_out=message or None))
    response.delete_cookie(sessions.COOKIE, **sessions.cookie_options())
    return response


def _view_role() -> str:
    view = current_app.view_functions.get(request.endpoint)
    return getattr(view, "_console_role", "ADMIN")


def tenant_area():
    """before_request of the tenant pages."""
    session = current_session()
    if session is None:
        return _to_login()
    if session.kind != "user":
        return redirect(url_for("console_staff.tenants"))
    tenant = load_tenant_ref(current_app.extensions["zixly_router"], session.tenant)
    if tenant is None or tenant.status != "active":
        return sign_out_response("suspended")
    check_form()
    if RANK[session.role] < RANK[_view_role()]:
        abort(403, f"This needs the {_view_role()} role; you have {session.role}.")
    g.console_tenant = tenant
    g.console_tenant_token = set_tenant(tenant)


def staff_area():
    """before_request of the staff pages."""
    session = current_session()
    if session is None:
        return _to_login()
    if session.kind != "staff":
        abort(403, "These pages are for Zixly staff.")
    check_form()


def still_signed_in() -> bool:
    """For a long answer (a live stream): the session still exists and, for a user, the tenant is still active."""
    session = sessions.load(request.cookies.get(sessions.COOKIE))
    if session is None:
        return False
    if session.kind != "user":
        return True
    tenant = load_tenant_ref(current_app.extensions["zixly_router"], session.tenant)
    return tenant is not None and tenant.status == "active"


def clear_tenant(_exc=None) -> None:
    token = g.pop("console_tenant_token", None)
    if token is not None:
        reset_tenant(token)
