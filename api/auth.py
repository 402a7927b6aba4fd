"""Who is calling, what they may do, and the tenant context for the request — decided in one place.

Each view method declares its access with `@access(...)`: "public", "staff", or the least tenant role it
needs ("VIEWER" < "EDITOR" < "ADMIN"). A view that declares nothing is staff-only (fail closed). The tenant
context is set here before the view runs and cleared when the request ends.
"""
from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from flask import Flask, current_app, g, request

from api import auth_failures
from api.body import MAX_JSON_DEPTH, json_depth_exceeds
from api.problems import Problem
from api.tokens import InvalidToken, KeysUnavailable, TokenVerifier
from core.platform.actors import Actor
from core.platform.logs import request_id_var
from tenancy import apikeys
from tenancy.context import TenantRef, reset_tenant, set_tenant
from tenancy.db import catalog_session
from tenancy.provisioning import load_tenant_ref

RANK = {"VIEWER": 1, "EDITOR": 2, "ADMIN": 3}
PUBLIC, STAFF = "public", "staff"
PUBLIC_ENDPOINTS: set[str] = set()  # endpoints registered by libraries (spec, docs)
# blueprints that authenticate their callers themselves (the console: a signed session cookie, console/guard.py)
SELF_AUTHENTICATED_BLUEPRINTS: set[str] = set()
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}\Z")


@dataclass(frozen=True)
class Principal:
    kind: str  # api_key | user | staff
    id: str
    role: str | None = None
    tenant: TenantRef | None = None
    environment: str = "live"  # a `zx_test_` key's principal is "test": see `access(live=True)`


def access(level: str, *, live: bool = False):
    """`live`: the operation changes or calls a live connection (a provider's real data): a test key
    (`zx_test_…`) is refused it with 403 `test-key-not-allowed`."""
    if level not in (PUBLIC, STAFF, *RANK):
        raise ValueError(level)

    def mark(fn):
        fn._zixly_access = level
        fn._zixly_live = live
        # api/openapi.py turns this mark into the operation's security, problem responses and limit headers
        fn.__dict__.setdefault("_apidoc", {}).setdefault("manual_doc", {})["x-zixly-access"] = level
        return fn

    return mark


def raw_body(fn):
    """Mark a view that reads a non-JSON body (webhooks): the JSON content-type check is skipped."""
    fn._zixly_raw_body = True
    doc = fn.__dict__.setdefault("_apidoc", {}).setdefault("manual_doc", {})
    doc["x-zixly-raw-body"] = True
    doc.setdefault("requestBody", {"required": True, "description": (
        "The payload exactly as the provider sends it; the signature is checked over these raw bytes."),
        "content": {"application/json": {"schema": {}}}})
    return fn


def _handler():
    if request.endpoint in PUBLIC_ENDPOINTS:
        return _public_marker
    view = current_app.view_functions.get(request.endpoint)
    cls = getattr(view, "view_class", None)
    if cls is None:
        return view
    method = request.method.lower()
    return getattr(cls, "get" if method == "head" else method, None)


def _public_marker():
    pass


_public_marker._zixly_access = PUBLIC


def _authenticate() -> Principal | None:
    """The caller, or None without credentials; an address that spent its failure budget is refused first."""
    api_key = request.headers.get("X-API-Key")
    auth = request.headers.get("Authorization")
    if api_key and auth:
        raise Problem(400, "ambiguous-credentials", "Send either X-API-Key or Authorization, not both.")
    if not (api_key or auth):
        return None
    failures = auth_failures.budget()
    if failures is not None:
        failures.refuse_if_spent()
    try:
        return _verify_credentials(api_key, auth)
    except Problem as exc:
        if exc.status == 401 and failures is not None:
            failures.spend()
        raise


def _verify_credentials(api_key: str | None, auth: str | None) -> Principal:
    if api_key:
        try:
            with catalog_session() as session:
                key = apikeys.authenticate(session, api_key.strip(),
                                           last_used_resolution=current_app.config["KEY_LAST_USED_RESOLUTION"])
        except apikeys.InvalidApiKey as exc:
            raise _unauthorized(str(exc)) from None
        return Principal("api_key", key.key_id, key.role, key.tenant, key.environment)
    scheme, _, token = auth.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("Authorization must be `Bearer <token>`.")
    verifier: TokenVerifier = current_app.extensions["zixly_tokens"]
    try:
        claims = verifier.verify(token.strip())
    except InvalidToken as exc:
        raise _unauthorized(str(exc)) from None
    except KeysUnavailable as exc:  # we cannot tell whether the token is good: not the caller's fault
        raise Problem(503, "token-keys-unavailable", f"Bearer tokens cannot be verified right now: {exc}. "
                      "Try again shortly, or use an API key.", title="Service Unavailable",
                      headers={"Retry-After": str(exc.retry_after)}) from None
    if claims.staff:
        return Principal("staff", claims.subject)
    tenant = load_tenant_ref(current_app.extensions["zixly_router"], claims.tenant)
    if tenant is None:
        raise _unauthorized("the token names an unknown tenant")
    return Principal("user", claims.subject, claims.role, tenant)


def _unauthorized(detail: str) -> Problem:
    return Problem(401, "unauthorized", detail, title="Unauthorized",
                   headers={"WWW-Authenticate": 'Bearer realm="zixly", ApiKey header="X-API-Key"'})


def _check_tenant_status(tenant: TenantRef) -> None:
    if tenant.status == "active":
        return
    if tenant.status == "suspended":
        raise Problem(403, "tenant-suspended", "This tenant is suspended; contact Zixly support.")
    if tenant.status == "archived":
        raise Problem(410, "tenant-archived", "This tenant has been archived.", title="Gone")
    if tenant.status == "erased":
        raise Problem(410, "tenant-erased", "This tenant's data has been erased.", title="Gone")
    raise Problem(403, "tenant-unavailable", f"This tenant is not available (status {tenant.status}).")


def _authorize(level: str, principal: Principal | None) -> None:
    if level == PUBLIC:
        return
    if principal is None:
        raise _unauthorized("Authentication required: send X-API-Key or a Bearer token.")
    if level == STAFF:
        if principal.kind != "staff":
            raise Problem(403, "staff-only", "This endpoint is for Zixly staff.")
        return
    if principal.tenant is None:
        raise Problem(403, "tenant-required", "This endpoint acts on a tenant; staff tokens do not.")
    _check_tenant_status(principal.tenant)
    if RANK[principal.role] < RANK[level]:
        raise Problem(403, "insufficient-role", f"This action needs the {level} role; you have {principal.role}.")


def refuse_test_key(reason: str, principal: Principal | None = None) -> None:
    """A test key (`zx_test_…`) reads everything and may run the `echo` workflow, but never touches a live
    connection: 403 `test-key-not-allowed` before anything changes."""
    principal = principal or g.get("principal")
    if principal is not None and principal.environment == "test":
        raise Problem(403, "test-key-not-allowed", f"A test key cannot do this: {reason}. Use a live key.")


def _check_body() -> None:
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    if request.content_length is not None and request.content_length > limit:
        raise Problem(413, "payload-too-large", f"The request body exceeds {limit} bytes.")
    if request.method in ("POST", "PUT", "PATCH") and (request.content_length or request.headers.get(
            "Transfer-Encoding")) and not request.is_json:
        raise Problem(415, "unsupported-media-type", "Send the body as application/json.")
    if request.is_json and json_depth_exceeds(request.get_data(cache=True)):
        raise Problem(400, "json-too-deep", f"The JSON body nests deeper than {MAX_JSON_DEPTH} levels of arrays "
                      "and objects; nothing was changed.")


def assign_request_id() -> None:
    """The request's id: the caller's X-Request-ID when it is a sane one, else a fresh one (logs and answers)."""
    rid = request.headers.get("X-Request-ID", "")
    g.request_id = rid if _REQUEST_ID.match(rid) else uuid.uuid4().hex
    request_id_var.set(g.request_id)


def before_request() -> None:
    assign_request_id()
    if request.endpoint is None:  # 404/405: let routing answer
        return
    if request.blueprint in SELF_AUTHENTICATED_BLUEPRINTS:
        return
    handler = _handler()
    level = getattr(handler, "_zixly_access", STAFF)
    if level != PUBLIC or request.method not in ("GET", "HEAD", "OPTIONS"):
        if not getattr(handler, "_zixly_raw_body", False):
            _check_body()
    principal = _authenticate() if level != PUBLIC else None
    _authorize(level, principal)
    if getattr(handler, "_zixly_live", False):
        refuse_test_key("this operation changes or calls live connections", principal)
    g.principal = principal
    if principal is not None:
        g.actor = Actor(type=principal.kind, id=principal.id, request_id=g.request_id)
        if principal.tenant is not None:
            g.tenant_token = set_tenant(principal.tenant)


def teardown_request(_exc=None) -> None:
    token = g.pop("tenant_token", None)
    if token is not None:
        reset_tenant(token)


def after_request(response):
    response.headers["X-Request-ID"] = getattr(g, "request_id", "")
    return response


def init_app(app: Flask) -> None:
    app.before_request(before_request)
    app.teardown_request(teardown_request)
    app.after_request(after_request)
