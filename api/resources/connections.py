"""Tenant connections to providers (`/v1/connections`) and the public OAuth callback (`/v1/oauth/callback`).

ADMIN creates, changes, tests and deletes; VIEWER reads. No response ever carries a token; a webhook secret
is shown once, to the admin who created it, and no later answer shows any part of it. A consent is bound to
the browser that made the authenticated request starting it (its answer sets the flow's cookie) unless the
caller opts into `"consent": "api"`.
"""
from __future__ import annotations

from urllib.parse import urlencode

import marshmallow as ma
from flask import current_app, g, redirect, request
from flask.views import MethodView
from flask_smorest import Blueprint

from api import consent_cookies
from api.auth import access
from api.common import PageArgsSchema, decode_uuid_cursor, idempotent, page, page_schema
from connectors.registry import CONNECTORS
from core.connections import api_calls, consent_binding, hook_secrets, oauth, providers, sealing, store
from core.connections.consent_failures import ConsentFailed
from core.platform.runtime import settings
from core.platform.validation import FullMatch

blp = Blueprint("connections", __name__, url_prefix="/v1/connections",
                description="Connections to providers (Xero, HubSpot, Shopify, Asana, Salesforce) and their "
                            "webhook endpoints.")
oauth_blp = Blueprint("oauth", __name__, url_prefix="/v1/oauth", description="OAuth consent callback.")

CONSENT_DESCRIPTION = (
    "How the consent is bound to the person who started it. `browser` (the default): the answer sets a "
    "short-lived cookie (`zixly_consent_…`, HttpOnly, SameSite=Lax, Path=/v1/oauth, 10 minutes) in the client "
    "that made this authenticated request, and the callback binds the account only in that same browser: a "
    "consent URL forwarded to someone else connects nothing (account-linking CSRF). Make the request from the "
    "admin's browser (a `fetch` with a bearer token, same site as the API), then navigate to `authorize_url`. "
    "`api`: for clients that drive consent themselves (a server holding an API key has no browser for the "
    "cookie): the callback accepts the consent without a cookie, and it is then the client's responsibility to "
    "open `authorize_url` only in its own user's browser, never to hand it to anyone else.")

PROVIDERS = sorted([*CONNECTORS, *providers.WEBHOOK_ONLY])
STATUSES = ["pending", "select_account", "active", "paused", "reauth_required"]


class AppSchema(ma.Schema):
    client_id = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=255))
    client_secret = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=512),
                                     load_only=True)


class ConnectionCreateSchema(ma.Schema):
    provider = ma.fields.String(required=True, validate=ma.validate.OneOf(PROVIDERS))
    name = ma.fields.String(load_default="", validate=ma.validate.Length(max=200))
    options = ma.fields.Dict(keys=ma.fields.String(), load_default=dict,
                             metadata={"description": "Provider options: `shop` (Shopify, x.myshopify.com), "
                                                      "`instance_url` (Salesforce), `account_id` to bind a "
                                                      "given account."})
    app = ma.fields.Nested(AppSchema, load_default=None, allow_none=True,
                           metadata={"description": "Bring your own provider app instead of Zixly's."})
    webhook_secret = ma.fields.String(load_default=None, validate=ma.validate.Length(min=8, max=512),
                                      metadata={"description": "The provider's webhook signing key for this "
                                                               "connection's endpoint (your own app)."})
    consent = ma.fields.String(load_default=consent_binding.BROWSER,
                               validate=ma.validate.OneOf(consent_binding.MODES),
                               metadata={"description": CONSENT_DESCRIPTION})

    class Meta:
        example = {"provider": "xero", "name": "Main Xero organisation", "options": {}}


class SecretInfoSchema(ma.Schema):
    """Which secrets are valid, never any part of one: it is shown once, in the answer that created it."""

    id = ma.fields.String()
    created_at = ma.fields.String(allow_none=True)


class WebhookInfoSchema(ma.Schema):
    url = ma.fields.String()
    secrets = ma.fields.List(ma.fields.Nested(SecretInfoSchema))


class AccountChoiceSchema(ma.Schema):
    account_id = ma.fields.String()
    name = ma.fields.String(allow_none=True)


class ConnectionSchema(ma.Schema):
    id = ma.fields.String()
    provider = ma.fields.String()
    status = ma.fields.String()
    name = ma.fields.String()
    account_id = ma.fields.String(allow_none=True)
    account_name = ma.fields.String(allow_none=True)
    accounts = ma.fields.List(ma.fields.Nested(AccountChoiceSchema), allow_none=True,
                              metadata={"description": "Accounts to choose from (status select_account)."})
    options = ma.fields.Dict()
    own_app = ma.fields.Boolean()
    token_expires_at = ma.fields.DateTime(allow_none=True)
    authorized_at = ma.fields.DateTime(allow_none=True)
    last_error = ma.fields.String(allow_none=True)
    created_at = ma.fields.DateTime()
    updated_at = ma.fields.DateTime()
    webhook = ma.fields.Nested(WebhookInfoSchema)


AUTHORIZE_URL_DESCRIPTION = ("The provider's consent page: navigate the browser that made this request there "
                             "(`consent: browser`), or your own user's browser (`consent: api`); the provider "
                             "returns to /v1/oauth/callback.")


class ConnectionStartedSchema(ConnectionSchema):
    authorize_url = ma.fields.String(allow_none=True, metadata={"description": AUTHORIZE_URL_DESCRIPTION})
    consent = ma.fields.String(allow_none=True, metadata={"description": "`browser` or `api` (see the request)."})
    webhook_secret = ma.fields.Dict(allow_none=True, metadata={
        "description": "The generated webhook secret (webhook-only providers); shown only once."})


class ConnectionPatchSchema(ma.Schema):
    name = ma.fields.String(validate=ma.validate.Length(max=200))
    options = ma.fields.Dict(keys=ma.fields.String())
    account_id = ma.fields.String(validate=ma.validate.Length(min=1, max=255), metadata={
        "description": "Choose the provider account (after consent offered several)."})

    class Meta:
        example = {"name": "Xero (AU)"}


class ConnectionQueryArgsSchema(PageArgsSchema):
    provider = ma.fields.String(load_default=None, validate=ma.validate.OneOf(PROVIDERS))
    status = ma.fields.String(load_default=None, validate=ma.validate.OneOf(STATUSES))


ConnectionPageSchema = page_schema(ConnectionSchema, "ConnectionPageSchema")


class TestResultSchema(ma.Schema):
    ok = ma.fields.Boolean()
    provider = ma.fields.String()
    account_id = ma.fields.String(allow_none=True)
    error = ma.fields.String()
    detail = ma.fields.String()
    retry_after = ma.fields.Float()
    elapsed_ms = ma.fields.Float()
    result = ma.fields.Raw()


class AuthorizeSchema(ma.Schema):
    id = ma.fields.String()
    authorize_url = ma.fields.String(metadata={"description": AUTHORIZE_URL_DESCRIPTION})
    consent = ma.fields.String()


class AuthorizeArgsSchema(ma.Schema):
    consent = ma.fields.String(load_default=consent_binding.BROWSER,
                               validate=ma.validate.OneOf(consent_binding.MODES),
                               metadata={"description": CONSENT_DESCRIPTION})

    class Meta:
        example = {"consent": "browser"}


CONSENT_COOKIE_HEADER = {"Set-Cookie": {
    "description": "`zixly_consent_…=…; HttpOnly; SameSite=Lax; Path=/v1/oauth; Max-Age=600` (and `Secure` over "
                   "https), for `consent: browser`: the browser holding it is the only one whose callback binds "
                   "the account. Not set again on an `Idempotent-Replayed` answer.",
    "schema": {"type": "string"}}}


class SecretCreateSchema(ma.Schema):
    secret = ma.fields.String(load_default=None, validate=ma.validate.Length(min=8, max=512), metadata={
        "description": "The provider's new signing key; omit to have Zixly generate one."})


class SecretCreatedSchema(ma.Schema):
    id = ma.fields.String()
    secret = ma.fields.String(metadata={"description": "Shown only once."})
    created_at = ma.fields.String()


def _hook_url(token: str | None) -> str | None:
    if token is None:
        return None
    base = (settings().public_base_url or request.host_url).rstrip("/")
    return f"{base}/v1/hooks/{token}"


def _view(conn, **extra) -> dict:
    secrets_ = sealing.webhook_secrets(conn)
    return {
        "id": str(conn.id), "provider": conn.provider, "status": conn.status, "name": conn.name,
        "account_id": conn.account_id, "account_name": conn.account_name, "accounts": conn.accounts,
        "options": conn.options or {}, "own_app": bool(conn.app_client_id),
        "token_expires_at": conn.token_expires_at, "authorized_at": conn.authorized_at,
        "last_error": conn.last_error, "created_at": conn.created_at, "updated_at": conn.updated_at,
        "webhook": {"url": _hook_url(sealing.hook_token(conn)),
                    "secrets": [{"id": s["id"], "created_at": s.get("created_at")} for s in secrets_]},
        **extra,
    }


@blp.route("")
class Connections(MethodView):
    @access("VIEWER")
    @blp.arguments(ConnectionQueryArgsSchema, location="query")
    @blp.response(200, ConnectionPageSchema)
    def get(self, args):
        """List connections (never tokens or secrets)."""
        rows = store.list_connections(limit=args["limit"] + 1, after=decode_uuid_cursor(args["cursor"]),
                                            provider=args["provider"], status=args["status"])
        result = page(rows, args["limit"], lambda c: str(c.id))
        result["items"] = [_view(c) for c in result["items"]]
        return result

    @access("ADMIN", live=True)
    @idempotent("tenant")
    @blp.arguments(ConnectionCreateSchema)
    @blp.response(201, ConnectionStartedSchema, headers=CONSENT_COOKIE_HEADER)
    @blp.alt_response(409, description="`plan-limit-reached`: the plan's connections (`limits.max_connections`) or "
                      "webhook endpoints (`limits.max_hook_endpoints`, one per connection) are all taken; nothing is "
                      "created. Or a request with the same `Idempotency-Key` is still running (`Retry-After`).")
    def post(self, data):
        """Start a connection: stored as `pending`, with the provider consent URL to send the user to and, by
        default, the cookie that binds the consent to this browser."""
        started = oauth.start_connection(actor=g.actor, **data)
        authorization = started.authorization
        consent_cookies.set_on_answer(authorization.cookie if authorization else None)
        return _view(started.connection, authorize_url=authorization.url if authorization else None,
                     consent=authorization.mode if authorization else None,
                     webhook_secret=started.new_secret), 201


@blp.route("/<string:connection_id>")
class ConnectionById(MethodView):
    @access("VIEWER")
    @blp.response(200, ConnectionSchema)
    def get(self, connection_id):
        """Read a connection (never tokens or secrets)."""
        return _view(store.get_connection(connection_id))

    @access("ADMIN", live=True)
    @blp.arguments(ConnectionPatchSchema)
    @blp.response(200, ConnectionSchema)
    def patch(self, data, connection_id):
        """Rename, change options, or choose the provider account after consent."""
        return _view(store.update_connection(connection_id, actor=g.actor, **data))

    @access("ADMIN", live=True)
    @blp.response(204)
    def delete(self, connection_id):
        """Revoke at the provider (where it can), wipe the tokens and secrets, stop routing its webhooks."""
        store.delete_connection(connection_id, actor=g.actor)


@blp.route("/<string:connection_id>/test")
class ConnectionTest(MethodView):
    @access("ADMIN", live=True)
    @blp.response(200, TestResultSchema)
    def post(self, connection_id):
        """Make one cheap authenticated call to the provider and report how it went."""
        return api_calls.test_connection(connection_id, actor=g.actor)


@blp.route("/<string:connection_id>/pause")
class ConnectionPause(MethodView):
    @access("ADMIN", live=True)
    @blp.response(200, ConnectionSchema)
    def post(self, connection_id):
        """Pause an active connection: its webhooks are still verified and kept but start no job, its scheduled
        workflows are skipped, and nothing calls the provider through it until it is resumed (409 unless
        active)."""
        return _view(store.pause_connection(connection_id, actor=g.actor))


@blp.route("/<string:connection_id>/resume")
class ConnectionResume(MethodView):
    @access("ADMIN", live=True)
    @blp.response(200, ConnectionSchema)
    def post(self, connection_id):
        """Resume a paused connection (409 unless paused); events kept meanwhile can be replayed."""
        return _view(store.resume_connection(connection_id, actor=g.actor))


@blp.route("/<string:connection_id>/authorize")
class ConnectionAuthorize(MethodView):
    @access("ADMIN", live=True)
    @blp.arguments(AuthorizeArgsSchema, required=False)
    @blp.response(200, AuthorizeSchema, headers=CONSENT_COOKIE_HEADER)
    def post(self, data, connection_id):
        """A fresh consent (to finish a pending connection or re-authorise one), bound to this browser by the
        cookie this answer sets unless `consent` is `api`."""
        conn, authorization = oauth.reauthorize(connection_id, actor=g.actor, consent=data["consent"])
        consent_cookies.set_on_answer(authorization.cookie)
        return {"id": str(conn.id), "authorize_url": authorization.url, "consent": authorization.mode}


@blp.route("/<string:connection_id>/webhook/secrets")
class WebhookSecrets(MethodView):
    @access("ADMIN", live=True)
    @blp.arguments(SecretCreateSchema)
    @blp.response(201, SecretCreatedSchema)
    def post(self, data, connection_id):
        """Add a webhook secret; the older ones stay valid until retired (rotation without downtime)."""
        return hook_secrets.add_webhook_secret(connection_id, actor=g.actor, secret=data["secret"]), 201


@blp.route("/<string:connection_id>/webhook/secrets/<string:secret_id>")
class WebhookSecretById(MethodView):
    @access("ADMIN", live=True)
    @blp.response(204)
    def delete(self, connection_id, secret_id):
        """Retire a webhook secret; deliveries signed with it are refused from now on."""
        hook_secrets.retire_webhook_secret(connection_id, secret_id, actor=g.actor)


# RFC 6749 (appendix A) allows only printable ASCII in `state`, `code`, `error` and `error_description`; so
# percent-encoded each character is at most 3 bytes, and the bounds below, all at once, fit in the request line
# gunicorn accepts (limit_request_line: tests/contract/test_openapi.py checks every operation's query fits).
_OAUTH_TEXT = r"^[ -~]*$"


def _oauth_text(max_length: int) -> list:
    return [ma.validate.Length(max=max_length), FullMatch(_OAUTH_TEXT, error="Printable ASCII only (RFC 6749).")]


class CallbackArgsSchema(ma.Schema):
    state = ma.fields.String(load_default="", validate=_oauth_text(256))  # ours: 43 characters
    code = ma.fields.String(load_default=None, validate=_oauth_text(1536))
    error = ma.fields.String(load_default=None, validate=_oauth_text(200))
    error_description = ma.fields.String(load_default=None, validate=_oauth_text(600))

    class Meta:
        unknown = ma.INCLUDE  # providers add their own (Shopify: shop, hmac, host, timestamp)


class CallbackResultSchema(ma.Schema):
    tenant = ma.fields.String()
    connection = ma.fields.Nested(ConnectionSchema)


@oauth_blp.route("/callback")
class OAuthCallback(MethodView):
    @access("public")
    @oauth_blp.arguments(CallbackArgsSchema, location="query")
    @oauth_blp.response(200, CallbackResultSchema)
    @oauth_blp.alt_response(302, description="Redirect to the console (a flow it started) or the configured "
                                             "return URL. A failed consent the console started is redirected "
                                             "back to it too, with only a short reason (`consent_error`).")
    @oauth_blp.alt_response(403, description="A `browser` consent came back to a browser without the cookie set "
                                             "for its initiator (another person's browser): nothing was bound, "
                                             "and the state is spent; the admin asks for a fresh consent.")
    def get(self, args):
        """Where the provider sends the user after consent: checks the single-use state and, for a `browser`
        consent, that this browser holds the cookie its initiator was given; exchanges the code, stores the
        tokens sealed, and redirects to the console's page when the console started the flow, else to the
        configured return URL (or answers JSON). The state is spent by the
        first callback naming it, even one refused for coming back to the wrong browser: the code it carried
        reached someone else, so it must never become usable."""
        params = {k: v for k, v in request.args.items() if isinstance(v, str)}
        try:
            result = oauth.complete_oauth(params, browser_nonce=consent_cookies.take_from_callback(args["state"]))
        except ConsentFailed as failed:
            return _failed_consent(failed)
        target = result.return_to or settings().oauth_return_url  # the console's page when it started the flow
        if target:
            return redirect(_with_query(target, {"connection": str(result.connection.id),
                                                 "status": result.connection.status}), 302)
        return {"tenant": result.tenant.slug, "connection": _view(result.connection)}


def _with_query(target: str, values: dict) -> str:
    return target + ("&" if "?" in target else "?") + urlencode(values)


def _failed_consent(failed: ConsentFailed):
    """Back to the page the flow's initiator set at its start, with only the failure's short reason; a flow
    started through the API (no such page) answers problem+json. A state that cannot be found names no page,
    but one minted for a flow returning to this site goes to this site's fixed consent page (the app's
    CONSENT_RETURN_PATH, set when the console is mounted)."""
    target = failed.return_to
    if target is None and failed.from_site_page:
        target = current_app.config.get("CONSENT_RETURN_PATH")
    if not target:
        raise failed.error
    values = {"connection": failed.connection_id} if failed.connection_id else {}
    return redirect(_with_query(target, {**values, "consent_error": failed.reason}), 302)

