"""A simulated provider: its routes under `/{provider}/{real host}/{real path}`, its OAuth endpoints, its errors.

Each provider module subclasses `Provider`, declares routes, and shapes bodies and errors as its docs show.
"""
from __future__ import annotations

import base64
import hmac
import json
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote, urlencode

from werkzeug.wrappers import Request, Response

from sandbox.authority import App, Authority, Code, Grant, s256


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern
    handler: str
    api: bool = True    # API routes can be rate limited or failed on demand
    auth: bool = True   # and most need an access token


def route(method: str, pattern: str, handler: str, api: bool = True, auth: bool | None = None) -> Route:
    return Route(method, re.compile(pattern), handler, api, api if auth is None else auth)


def json_response(body, status: int = 200, headers: dict | None = None) -> Response:
    return Response(json.dumps(body), status=status, headers=headers or {}, mimetype="application/json")


class Provider:
    name: str = ""
    routes: tuple[Route, ...] = ()
    access_ttl: float = 3600.0
    rotate_refresh: bool = False
    refresh_grace: float = 0.0
    client_auth: str = "post"          # "basic": HTTP Basic only; "post": client_id/client_secret in the body
    supports_pkce: bool = True
    issues_refresh: bool = True

    def __init__(self, authority: Authority):
        self.authority = authority
        self.seed()

    def seed(self) -> None:
        """Create the demo account data."""

    # --- dispatch -------------------------------------------------------------------------------------------
    def match(self, method: str, target: str) -> tuple[Route, dict] | None:
        allowed = False
        for candidate in self.routes:
            found = candidate.pattern.fullmatch(target)
            if found:
                allowed = True
                if candidate.method == method:
                    return candidate, found.groupdict()
        return (Route(method, re.compile(""), "method_not_allowed", False, False), {}) if allowed else None

    def method_not_allowed(self, request: Request, **_) -> Response:
        return json_response({"error": "method not allowed"}, 405)

    def authenticate(self, request: Request) -> Grant | None:
        header = request.headers.get("Authorization", "")
        token = header[7:].strip() if header[:7].lower() == "bearer " else None
        return self.authority.live_access(self.name, token)

    # --- what differs per provider ------------------------------------------------------------------------
    def unauthorized(self) -> Response:
        return json_response({"message": "unauthorized"}, 401)

    def rate_limited(self, retry_after: float) -> Response:
        return json_response({"message": "rate limited"}, 429, {"Retry-After": f"{retry_after:g}"})

    def quota_headers(self, grant: Grant | None) -> dict[str, str]:
        return {}

    def oauth_error(self, error: str, description: str, status: int = 400) -> Response:
        return json_response({"error": error, "error_description": description}, status)

    def consent(self, request: Request, host: str, app: App) -> dict | Response:
        """The account the (always consenting) user grants; a Response to refuse."""
        return {}

    def callback_params(self, params: dict, host: str, account: dict, app: App) -> dict:
        """The query the user is redirected back with (Shopify adds and signs more)."""
        return params

    def token_body(self, grant: Grant, access: str, refresh: str | None, app: App, refreshing: bool) -> dict:
        body = {"access_token": access, "token_type": "Bearer", "expires_in": int(self.access_ttl),
                "scope": grant.scope}
        if refresh:
            body["refresh_token"] = refresh
        return body

    def token_request_params(self, request: Request) -> dict:
        return request.form.to_dict()

    # --- OAuth endpoints (shared) ---------------------------------------------------------------------------
    def authorize(self, request: Request, host: str = "", **_) -> Response:
        q = request.args
        app = self.authority.app(self.name, q.get("client_id"))
        redirect_uri = q.get("redirect_uri") or ""
        if app is None:
            return json_response({"error": "invalid_client", "error_description": "unknown client_id"}, 400)
        if not redirect_uri or (app.redirect_uris and redirect_uri not in app.redirect_uris):
            return json_response({"error": "invalid_request", "error_description": "redirect_uri mismatch"}, 400)
        challenge = q.get("code_challenge") if self.supports_pkce else None
        if challenge and q.get("code_challenge_method") != "S256":
            return json_response({"error": "invalid_request", "error_description": "only S256 is supported"}, 400)
        joiner = "&" if "?" in redirect_uri else "?"
        refusal = self.authority.take_refusal(self.name)
        if refusal is not None:  # the user declined (or the provider failed): RFC 6749 §4.1.2.1
            params = {"error": refusal[0], "error_description": refusal[1],
                      **({"state": q["state"]} if "state" in q else {})}
            return Response(status=302, headers={"Location": f"{redirect_uri}{joiner}{urlencode(params)}"})
        account = self.consent(request, host, app)
        if isinstance(account, Response):
            return account
        code = self.authority.new_code(self.name, Code(account, app.client_id, redirect_uri, q.get("scope") or "",
                                                       challenge, time.time() + Authority.CODE_TTL))
        params = self.callback_params({"code": code, **({"state": q["state"]} if "state" in q else {})},
                                      host, account, app)
        return Response(status=302, headers={"Location": f"{redirect_uri}{joiner}{urlencode(params)}"})

    def token(self, request: Request, **_) -> Response:
        form = self.token_request_params(request)
        grant_type = form.get("grant_type") or ("authorization_code" if "code" in form else "")
        with self.authority.lock:
            self.authority.token_requests[(self.name, grant_type)] += 1
        app = self._client(request, form)
        if app is None:
            return self.oauth_error("invalid_client", "client authentication failed",
                                    401 if self.client_auth == "basic" else 400)
        if grant_type == "authorization_code":
            return self._exchange(form, app)
        if grant_type == "refresh_token":
            return self._refresh(form, app)
        return self.oauth_error("unsupported_grant_type", f"unsupported grant_type {grant_type!r}")

    def revoke(self, request: Request, **_) -> Response:
        form = self.token_request_params(request)
        if self._client(request, form) is None:
            return self.oauth_error("invalid_client", "client authentication failed")
        self.authority.revoke(self.name, form.get("token") or "")
        return Response(status=200)

    def _client(self, request: Request, form: dict) -> App | None:
        if self.client_auth == "basic":
            client_id, secret = _basic(request.headers.get("Authorization", ""))
        else:
            client_id, secret = form.get("client_id"), form.get("client_secret")
        app = self.authority.app(self.name, client_id)
        if app is None or not hmac.compare_digest(str(secret or "").encode(), app.client_secret.encode()):
            return None
        return app

    def _exchange(self, form: dict, app: App) -> Response:
        if self.authority.take_code_refusal(self.name):
            return self.oauth_error("invalid_grant", "authorization code is invalid or expired")
        with self.authority.lock:
            code = self.authority.codes.get(form.get("code") or "")
            if code is None or code.client_id != app.client_id or code.expires_at < time.time():
                return self.oauth_error("invalid_grant", "authorization code is invalid or expired")
            if code.used:
                # A replayed code revokes what the first exchange issued (RFC 6749 §4.1.2).
                if code.grant:
                    code.grant.revoked = True
                return self.oauth_error("invalid_grant", "authorization code was already used")
            if self.checks_redirect_uri and form.get("redirect_uri") != code.redirect_uri:
                return self.oauth_error("invalid_grant", "redirect_uri does not match the authorization request")
            if code.challenge and s256(form.get("code_verifier") or "") != code.challenge:
                return self.oauth_error("invalid_grant", "PKCE verification failed")
            code.used = True
            grant = code.grant = Grant(self.name, app.client_id, code.grant_account, code.scope)
        with_refresh = self.issues_refresh and self.wants_refresh(form)
        access, refresh = self.authority.issue(grant, self.ttl_for(form), with_refresh)
        return json_response(self.token_body(grant, access, refresh, app, refreshing=False),
                             headers={"Cache-Control": "no-store"})

    checks_redirect_uri = True

    def wants_refresh(self, form: dict) -> bool:
        return True

    def ttl_for(self, form: dict) -> float:
        return self.access_ttl

    def _refresh(self, form: dict, app: App) -> Response:
        old = form.get("refresh_token") or ""
        with self.authority.lock:   # two racing refreshes of a rotating token: the second one loses
            grant = self.authority.live_refresh(self.name, old)
            if grant is None or grant.client_id != app.client_id:
                return self.refresh_refused()
            access, new = self.authority.issue(grant, self.access_ttl, with_refresh=self.rotate_refresh)
            if new:
                self.authority.retire_refresh(old, self.refresh_grace)
        return json_response(self.token_body(grant, access, new, app, refreshing=True),
                             headers={"Cache-Control": "no-store"})

    def refresh_refused(self) -> Response:
        return self.oauth_error("invalid_grant", "refresh token is invalid, expired or revoked")


def _basic(header: str) -> tuple[str | None, str | None]:
    if header[:6].lower() != "basic ":
        return None, None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return None, None
    client_id, _, secret = decoded.partition(":")
    return unquote(client_id), unquote(secret)   # RFC 6749 §2.3.1 form-encodes both before base64


def new_id(prefix: str = "", length: int = 12) -> str:
    return prefix + secrets.token_hex(length // 2)


Handler = Callable[..., Response]
