"""Flask app factory: configuration, auth, problem+json errors, one blueprint per resource."""
from __future__ import annotations

import logging

import marshmallow as ma
from flask import Flask
from flask_smorest import Api
from sqlalchemy.exc import DataError

from api import auth, auth_failures, docs, hook_app, limits, observability, openapi, problems
from api.flask_app import ZixlyFlask
from api.resources import (
    api_keys,
    connections,
    deliveries,
    events,
    hooks,
    jobs,
    notifications,
    staff_tenants,
    subscriptions,
    system,
    tenant,
    workflows,
)
from api.tokens import TokenVerifier
from connectors.base import MalformedPayload, VerificationFailed
from connectors.errors import ConnectorError
from connectors.registry import UnknownProvider
from core import bootstrap
from core.inbound import webhook_budget, webhooks
from core.platform import crypto, errors
from core.platform.config import Settings
from core.tenants import apikeys as core_apikeys
from tenancy import provisioning
from tenancy.context import InvalidSlug
from tenancy.db import get_router

BLUEPRINTS = (system.blp, staff_tenants.blp, tenant.blp, api_keys.blp, connections.blp, connections.oauth_blp,
              hooks.blp, events.blp, jobs.blp, workflows.blp, notifications.blp, deliveries.blp, subscriptions.blp)

DOMAIN_ERRORS = {  # what a service raises -> the HTTP status (the console answers these too)
    provisioning.TenantExists: 409,
    provisioning.TenantNotFound: 404,
    provisioning.UnknownPlan: 422,
    provisioning.UnknownShard: 422,
    provisioning.InvalidTransition: 409,
    provisioning.ProvisioningFailed: 500,
    InvalidSlug: 422,
    core_apikeys.ApiKeyNotFound: 404,
    core_apikeys.TooManyKeys: 409,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.Invalid: 422,
    errors.BadRequest: 400,
    errors.Forbidden: 403,
    errors.Unavailable: 503,
    errors.UpstreamFailed: 502,
    ConnectorError: 502,
    crypto.KeyringError: 503,
    UnknownProvider: 404,
    MalformedPayload: 400,
    webhooks.TenantNotReceiving: 403,
    webhooks.TenantMoving: 503,
    webhooks.UnroutableDelivery: 422,
    webhook_budget.WebhookBudgetSpent: 429,
}


class ProblemSchema(ma.Schema):
    """RFC 9457 problem details, plus `errors` (field problems) and `request_id`."""

    class Meta:
        unknown = ma.INCLUDE  # problem types may add members (RFC 9457 §3.2), e.g. `checks` on 503

    type = ma.fields.String()
    title = ma.fields.String()
    status = ma.fields.Integer()
    detail = ma.fields.String()
    instance = ma.fields.String()
    request_id = ma.fields.String()
    errors = ma.fields.Dict()


class ZixlyApi(Api):
    ERROR_SCHEMA = ProblemSchema


def _openapi_config(app: Flask) -> None:
    app.config.update(
        API_TITLE="Zixly API",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX=None,  # api/docs.py serves /openapi.json and /docs (the finished contract, no CDN)
        API_SPEC_OPTIONS={"info": {"description": API_DESCRIPTION}},
    )


API_DESCRIPTION = """Zixly connects a small business's systems (Xero, HubSpot, Shopify, Asana, Salesforce): their
webhooks come in, are kept durably, and start workflows that run as jobs in the background.

**Authentication.** Machine clients send a tenant API key in `X-API-Key`; people send a JWT in
`Authorization: Bearer …` (tenant users, or Zixly staff: a staff token is one issued for the staff audience,
never the tenant one). Each operation says which it accepts and the least
role it needs (VIEWER < EDITOR < ADMIN). Webhooks from providers need neither: the provider's own signature is
checked.

**Errors** are `application/problem+json` (RFC 9457): `type`, `title`, `status`, `detail`, plus `errors` for
field problems and `request_id`.

**Every response** carries `X-Request-ID`; send your own to correlate logs.

**Rate limits** are per tenant and per key, from the tenant's plan: `RateLimit-Limit`, `RateLimit-Remaining` and
`RateLimit-Reset` (also as `X-RateLimit-*`) on each response; a 429 carries `Retry-After`. Refused credentials
are budgeted per client address (30 a minute by default): beyond that, a request with credentials from that
address answers 429 `too-many-failed-authentications` with `Retry-After`, whatever key it carries.

**Input.** JSON bodies are `application/json`, nested at most 64 levels deep (deeper is a 400
`json-too-deep`); a field the schema does not name is a 422. Unknown query
parameters are ignored. Text cannot contain NUL (U+0000): such a request is a 422 `unstorable-value`.

**Lists** use cursor pagination: `?limit=` and `?cursor=`; a page has `items` and `next_cursor` (null on the
last page).

**Creates** accept an `Idempotency-Key` header, so a retry never creates twice.
"""


def create_app(settings: Settings | None = None, *, offline: bool = False) -> Flask:
    """`offline` builds the app without touching databases or global state (to render the spec)."""
    settings = settings or Settings.from_env()
    if not offline:
        bootstrap.init(settings)
    app = ZixlyFlask("zixly")
    app.config.update(
        MAX_CONTENT_LENGTH=settings.max_content_length,
        KEY_LAST_USED_RESOLUTION=settings.key_last_used_resolution,
        IDEMPOTENCY_TTL_HOURS=settings.idempotency_ttl_hours,
        IDEMPOTENCY_LEASE_SECONDS=settings.idempotency_lease_seconds,
        JSON_SORT_KEYS=False,
        PUBLIC_BASE_URL=settings.public_base_url,
        METRICS_TOKEN=settings.metrics_token,
    )
    _openapi_config(app)
    app.extensions["zixly_router"] = None if offline else get_router()
    app.extensions["zixly_tokens"] = TokenVerifier(
        issuer=settings.jwt_issuer, audience=settings.jwt_audience, staff_audience=settings.jwt_staff_audience,
        public_key_file=settings.jwt_public_key_file, jwks_url=settings.jwt_jwks_url)
    auth.init_app(app)
    app.extensions["zixly_limiter"] = limits.init_app(app, redis_url=settings.redis_url,
                                                      fail_open=settings.rate_limit_fail_open,
                                                      webhook_limit=settings.webhook_rate_limit)
    app.extensions["zixly_auth_failures"] = auth_failures.FailureBudget(
        app.extensions["zixly_limiter"], settings.auth_failure_limit, fail_open=settings.rate_limit_fail_open)
    observability.init_app(app, metrics_token=settings.metrics_token, metrics_public=settings.metrics_public)
    api = ZixlyApi(app, spec_kwargs={"marshmallow_plugin": openapi.SchemaPlugin()})
    for blp in BLUEPRINTS:
        api.register_blueprint(blp)
    app.register_blueprint(docs.blp)
    register_errors(app)  # after Api(), so these handlers replace flask-smorest's
    auth.PUBLIC_ENDPOINTS.add("static")
    if not offline:  # POST /v1/hooks/… is served by the hook path's own app (api/hook_app.py), same config
        app.wsgi_app = hook_app.HookDispatch(settings, app.config, register_errors, app.wsgi_app)
    if settings.trusted_proxies:  # outermost: both apps see the client's scheme, host and address
        from werkzeug.middleware.proxy_fix import ProxyFix

        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n, x_port=n, x_prefix=n)
    logging.getLogger("zixly").setLevel(logging.INFO)
    return app


def register_errors(app: Flask) -> None:
    """Every error as problem+json: the common handlers, then the domain's exceptions with their statuses."""
    problems.register(app)
    for exc_type, status in DOMAIN_ERRORS.items():
        app.register_error_handler(exc_type, _domain_error(status))
    app.register_error_handler(VerificationFailed, _verification_failed)
    app.register_error_handler(DataError, _unstorable)


def _domain_error(status: int):
    def handler(exc):
        code = getattr(exc, "code", None) or type(exc).__name__
        if not isinstance(code, str):
            code = "error"
        retry_after = getattr(exc, "retry_after", None) or (5 if status == 503 else None)
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
        return problems.problem_response(status, code, str(exc), headers=headers)

    return handler


def _unstorable(exc):
    # PostgreSQL refuses some values outright (a NUL character in text or JSON): the input's fault, not ours.
    return problems.problem_response(422, "unstorable-value",
                                     "The request contains a value that cannot be stored (such as a NUL character).")


def _verification_failed(exc):
    return problems.problem_response(401, "signature-invalid", f"Webhook signature rejected: {exc}",
                                     title="Unauthorized")
