"""Signing in and out: OpenID Connect (console.oidc), one-time development links, logout."""
from __future__ import annotations

from flask import abort, current_app, g, redirect, request, url_for

from console import dev_links, guard, oidc, sessions
from console.blueprints import auth as blp
from console.pages import render
from core.platform.runtime import settings

SIGNED_OUT = {"suspended": "Your organisation's access is suspended, so you have been signed out.",
              "logout": "You are signed out."}


def _safe_next(value: str | None) -> str:
    """Only a console page of this site (no open redirect)."""
    if value and value.startswith("/console/") and not value.startswith(("//", "/\\")) and "\\" not in value:
        return value
    return url_for("console_auth.home")


def _signed_in(principal: dict, next_path: str):
    _, cookie = sessions.create(**principal)
    response = redirect(next_path, 303)
    response.set_cookie(sessions.COOKIE, cookie, max_age=settings().console_session_seconds,
                        **sessions.cookie_options())
    return response


@blp.get("/")
def home():
    session = guard.current_session()
    if session is None:
        return redirect(url_for("console_auth.login"))
    return redirect(url_for("console_staff.tenants" if session.kind == "staff" else "console_tenant.overview"))


@blp.get("/login")
def login():
    return render("login.html", oidc_configured=oidc.configured(), dev_login=settings().console_dev_login,
                  message=SIGNED_OUT.get(request.args.get("signed_out", "")),
                  next=_safe_next(request.args.get("next")))


@blp.get("/login/start")
def login_start():
    if not oidc.configured():
        abort(503, "Sign-in is not configured (ZIXLY_CONSOLE_OIDC_CLIENT_ID and an https issuer).")
    try:
        started = oidc.start(redirect_uri=url_for("console_auth.login_callback", _external=True),
                             next_path=_safe_next(request.args.get("next")))
    except oidc.SignInFailed as exc:
        abort(503, str(exc))
    response = redirect(started.url, 303)
    response.set_cookie(oidc.LOGIN_COOKIE, started.login_id, max_age=oidc.LOGIN_TTL,
                        path="/console/login", httponly=True, samesite="Lax",
                        secure=settings().console_cookie_secure)
    return response


@blp.get("/login/callback")
def login_callback():
    params = {k: v for k, v in request.args.items()}
    try:
        claims, next_path = oidc.finish(login_id=request.cookies.get(oidc.LOGIN_COOKIE), params=params,
                                        verifier=current_app.extensions["zixly_tokens"])
    except oidc.SignInFailed as exc:
        abort(400, f"Sign-in failed: {exc}.")
    principal = ({"kind": "staff", "subject": claims.subject, "email": claims.email} if claims.staff else
                 {"kind": "user", "subject": claims.subject, "email": claims.email, "tenant": claims.tenant,
                  "role": claims.role})
    response = _signed_in(principal, next_path)
    response.delete_cookie(oidc.LOGIN_COOKIE, path="/console/login", httponly=True, samesite="Lax",
                           secure=settings().console_cookie_secure)
    return response


@blp.get("/dev-login/<token>")
def dev_login(token):
    principal = dev_links.redeem(token)
    if principal is None:
        abort(404, "This sign-in link is unknown, expired or already used (development links work once).")
    return _signed_in(principal, url_for("console_auth.home"))


@blp.post("/logout")
def logout():
    guard.check_form()
    g.console_session = guard.current_session()
    return guard.sign_out_response("logout")
