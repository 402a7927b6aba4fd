"""Connections: connect through the provider's consent and land back here, pick the account, reconnect,
test, pause and resume, delete, and the webhook endpoint with its secrets (rotation). VIEWERs read; ADMINs change."""
from __future__ import annotations

from flask import g, redirect, request

from api import consent_cookies
from api.resources.connections import PROVIDERS, ConnectionCreateSchema, SecretCreateSchema
from console import consent_errors, forms, guard
from console.blueprints import tenant as blp
from console.guard import requires
from console.pages import done, render
from core.connections import api_calls, hook_secrets, oauth, sealing, store
from core.connections.consent_binding import BROWSER
from core.connections.providers import WEBHOOK_ONLY, connector
from core.platform.errors import Conflict, Invalid, NotFound, Unavailable, UpstreamFailed
from core.platform.runtime import settings
from devstack import test_events

RETURN_PATH = "/console/connections/return"
OPTION_FIELDS = {"shopify": ("shop", "Shop domain (x.myshopify.com)"),
                 "salesforce": ("instance_url", "Instance URL (https://…my.salesforce.com)")}
CREATE_FIELDS = ["provider", "name"]


def hook_url(conn) -> str | None:
    token = sealing.hook_token(conn)
    if token is None:
        return None
    return f"{(settings().public_base_url or request.host_url).rstrip('/')}/v1/hooks/{token}"


def _list_page(errors=None, values=None, status=200):
    rows = store.list_connections(limit=200)
    return render("connections.html", status=status, connections=rows, providers=PROVIDERS,
                  fields=forms.fields_of(ConnectionCreateSchema(), CREATE_FIELDS), option_fields=OPTION_FIELDS,
                  errors=errors or {}, values=values or {})


def _to_consent(authorization):
    consent_cookies.set_on_answer(authorization.cookie)  # the consent completes only in this browser
    return redirect(authorization.url, 303)


@blp.get("/connections")
@requires("VIEWER")
def connections():
    return _list_page()


@blp.post("/connections")
@requires("ADMIN")
def connect():
    data, errors = forms.parse(ConnectionCreateSchema(), request.form, CREATE_FIELDS)
    option = OPTION_FIELDS.get(data.get("provider", ""))
    options = {}
    if option and request.form.get("option_" + option[0], "").strip():
        options[option[0]] = request.form["option_" + option[0]].strip()
    if errors:
        return _list_page(errors, request.form, 422)
    try:
        started = oauth.start_connection(actor=guard.actor(), provider=data["provider"], name=data["name"],
                                         options=options, consent=BROWSER, return_to=RETURN_PATH)
    except Invalid as exc:  # the provider's options, or no Zixly app for it
        return _list_page({"option_" + (option[0] if option else "provider"): str(exc)}, request.form, 422)
    if started.authorization is None:  # a webhook-only sender: active at once, its secret shown once
        return render("connection.html", status=201, **_detail(started.connection),
                      new_secret=started.new_secret)
    return _to_consent(started.authorization)


@blp.get("/connections/return")
@requires("VIEWER")
def consent_return():
    """Where the OAuth callback sends the browser after a consent started here (or one that failed)."""
    if "consent_error" in request.args:
        return _consent_failed(request.args["consent_error"], request.args.get("connection", ""))
    conn = store.get_connection(request.args.get("connection", ""))
    message = {"select_account": "Consent given. Choose which account to connect.",
               "active": "Connected."}.get(conn.status, f"The connection is {conn.status}.")
    return done(message, "console_tenant.connection", connection_id=str(conn.id))


def _consent_failed(reason: str, connection_id: str):
    """The fixed sentence for the reason, on the connection's page when it is this tenant's, else on the list."""
    try:
        conn = store.get_connection(connection_id) if connection_id else None
    except NotFound:
        conn = None
    if conn is None:
        return done(consent_errors.message_for(reason, None), "console_tenant.connections", kind="error")
    provider = connector(conn.provider).display_name if conn.provider not in WEBHOOK_ONLY else conn.provider
    return done(consent_errors.message_for(reason, provider), "console_tenant.connection", kind="error",
                connection_id=str(conn.id))


def _detail(conn) -> dict:
    return {"conn": conn, "hook_url": hook_url(conn), "secrets": sealing.webhook_secrets(conn),
            "oauth": conn.provider not in WEBHOOK_ONLY, "test_events": _test_events(conn)}


def _test_events(conn) -> list[str]:
    """Development only (the provider simulators and one-time links on): the events the simulator can send."""
    if not (settings().console_dev_login and settings().provider_simulator_url) or conn.status != "active":
        return []
    return [e.event for e in test_events.events_for(conn.provider)]


@blp.post("/connections/<connection_id>/test-event")
@requires("ADMIN")
def send_test_event(connection_id):
    conn = store.get_connection(connection_id)
    if request.form.get("event") not in _test_events(conn):
        return done("This connection offers no such test event.", "console_tenant.connection", kind="error",
                    connection_id=connection_id)
    try:
        sent = test_events.send_test_event(conn.provider, request.form["event"], tenant_slug=g.console_tenant.slug,
                                           connection_id=str(conn.id))
    except (Invalid, NotFound, Conflict, Unavailable, UpstreamFailed) as exc:
        return done(f"Not sent: {exc}", "console_tenant.connection", kind="error", connection_id=connection_id)
    return done(f"Sent {conn.provider} {sent['event']} ({sent.get('resource_id') or 'a record'}); Zixly answered "
                f"{sent['status']}. Its job appears below.", "console_tenant.jobs")


@blp.get("/connections/<connection_id>")
@requires("VIEWER")
def connection(connection_id):
    return render("connection.html", **_detail(store.get_connection(connection_id)))


@blp.post("/connections/<connection_id>/account")
@requires("ADMIN")
def choose_account(connection_id):
    conn = store.get_connection(connection_id)
    account_id = request.form.get("account_id", "")
    if account_id not in {a["account_id"] for a in conn.accounts or []}:
        return render("connection.html", status=422, **_detail(conn),
                      errors={"account_id": "Choose one of the accounts listed."})
    store.update_connection(conn.id, actor=guard.actor(), account_id=account_id)
    return done("Account chosen; the connection is active.", "console_tenant.connection",
                connection_id=str(conn.id))


@blp.post("/connections/<connection_id>/reconnect")
@requires("ADMIN")
def reconnect(connection_id):
    _, authorization = oauth.reauthorize(connection_id, actor=guard.actor(), consent=BROWSER,
                                         return_to=RETURN_PATH)
    return _to_consent(authorization)


@blp.post("/connections/<connection_id>/test")
@requires("ADMIN")
def test(connection_id):
    outcome = api_calls.test_connection(connection_id, actor=guard.actor())
    if outcome["ok"]:
        return done(f"Test passed: {outcome['detail']}.", "console_tenant.connection", connection_id=connection_id)
    return done(f"Test failed ({outcome.get('error')}): {outcome['detail']}", "console_tenant.connection",
                kind="error", connection_id=connection_id)


@blp.post("/connections/<connection_id>/pause")
@requires("ADMIN")
def pause(connection_id):
    store.pause_connection(connection_id, actor=guard.actor())
    return done("Paused: its webhooks are kept but start nothing, and nothing calls the provider through it.",
                "console_tenant.connection", connection_id=connection_id)


@blp.post("/connections/<connection_id>/resume")
@requires("ADMIN")
def resume(connection_id):
    store.resume_connection(connection_id, actor=guard.actor())
    return done("Resumed. Events kept while it was paused can be replayed from Events.", "console_tenant.connection",
                connection_id=connection_id)


@blp.post("/connections/<connection_id>/delete")
@requires("ADMIN")
def delete(connection_id):
    store.delete_connection(connection_id, actor=guard.actor())
    return done("Connection deleted: its tokens and secrets are wiped and its webhooks are no longer accepted.",
                "console_tenant.connections")


@blp.post("/connections/<connection_id>/secrets")
@requires("ADMIN")
def add_secret(connection_id):
    conn = store.get_connection(connection_id)
    data, errors = forms.parse(SecretCreateSchema(), request.form)
    if errors:
        return render("connection.html", status=422, **_detail(conn), errors=errors)
    item = hook_secrets.add_webhook_secret(conn.id, actor=guard.actor(), secret=data.get("secret"))
    return render("connection.html", status=201, **_detail(store.get_connection(conn.id)), new_secret=item)


@blp.post("/connections/<connection_id>/secrets/<secret_id>/retire")
@requires("ADMIN")
def retire_secret(connection_id, secret_id):
    hook_secrets.retire_webhook_secret(connection_id, secret_id, actor=guard.actor())
    return done("Secret retired: deliveries signed with it are refused from now on.", "console_tenant.connection",
                connection_id=connection_id)
