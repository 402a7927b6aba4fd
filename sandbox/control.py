"""The simulator's own control endpoint (not a provider's): `POST /_sandbox/webhooks` makes a simulated provider
emit a webhook exactly as it would send it, and `GET /_sandbox/webhooks` lists the events each one can emit.

    POST /_sandbox/webhooks {"provider": "xero", "event": "invoice.paid", "target_url": "https://…/hook",
                             "client_id": "<the subscribed app>", "account": "<organisation / portal / shop>",
                             "resource_id": "<optional: which invoice, deal…>"}
    → 200 {"provider", "event", "account", "resource_id", "changed", "status", "delivered", "response"}

The delivery is signed with the subscribed app's own secret, held here as the provider holds it (Xero: the app's
webhooks key; HubSpot and Shopify: the app's client secret; Asana: the X-Hook-Secret its handshake with the
target agreed, made on the first delivery to it): the caller never supplies a secret with an event. Salesforce's
outbound webhooks are Standard Webhooks: the subscriber's secret is configured at the sender, which is
`POST /_sandbox/subscriptions {"provider": "salesforce", "target_url", "secret"}` here. Bad input is a
400 and changes nothing; an event that cannot happen (unknown account or record) is a 422 and changes nothing;
a target that cannot be reached is a 502 (the event itself has happened, as it would have at the provider).
"""
from __future__ import annotations

import json
import secrets
from urllib.parse import urlsplit

import requests
from werkzeug.wrappers import Request, Response

from sandbox import signing
from sandbox.authority import App, Authority
from sandbox.provider import Provider, json_response
from sandbox.webhook_events import EVENTS, EventRefused, emit

PATH = "/webhooks"
SUBSCRIPTIONS = "/subscriptions"
FIELDS = ("provider", "event", "target_url", "client_id", "account", "resource_id")


def _error(status: int, message: str) -> Response:
    return json_response({"error": message}, status)


def signing_secret(provider: str, app: App) -> str | None:
    """The secret the provider signs the app's deliveries with (Asana: per webhook, see `_asana_hook_secret`)."""
    return app.webhook_key if provider == "xero" else app.client_secret


def _subscribe(request: Request, providers: dict[str, Provider]) -> Response:
    """`POST /_sandbox/subscriptions {"provider": "salesforce", "target_url", "secret"}`: what an admin does in
    Salesforce's setup for a Standard Webhooks sender: the subscriber's secret (whsec_…) for its URL."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or set(body) != {"provider", "target_url", "secret"}:
        return _error(400, "the body must be a JSON object with exactly provider, target_url and secret")
    if body["provider"] != "salesforce":
        return _error(400, "only salesforce takes its subscriber's secret (the others sign with their own)")
    if not all(isinstance(body[k], str) and body[k] for k in ("target_url", "secret")):
        return _error(400, "target_url and secret must be non-empty strings")
    if not body["secret"].startswith("whsec_"):
        return _error(400, "a Standard Webhooks secret starts with whsec_")
    providers["salesforce"].subscriptions[body["target_url"]] = body["secret"]
    return json_response({"provider": "salesforce", "target_url": body["target_url"]}, 201)


def _asana_hook_secret(asana, target_url: str) -> str | Response:
    """Asana's handshake, once per target: it POSTs an X-Hook-Secret, the target must echo it with a 2xx, and
    that secret signs every later delivery to it (a refused handshake creates no webhook: 502)."""
    known = asana.hook_secrets.get(target_url)
    if known:
        return known
    secret = secrets.token_hex(16)
    try:
        answer = requests.post(target_url, data=b"", headers={"X-Hook-Secret": secret}, timeout=15,
                               allow_redirects=False)
    except requests.RequestException as exc:
        return _error(502, f"the webhook handshake could not be made: {type(exc).__name__}")
    if not answer.ok or answer.headers.get("X-Hook-Secret") != secret:
        return _error(502, f"the target refused Asana's webhook handshake ({answer.status_code}): "
                      f"{_short(answer)}")
    asana.hook_secrets[target_url] = secret
    return secret


def _secret_before_the_event(provider: Provider, app: App | None, body: dict) -> str | Response:
    """The app's signing secret (Salesforce: its subscriber's), or the refusal that leaves everything unchanged."""
    secret = signing_secret(provider.name, app) if app else None
    if provider.name == "salesforce" and app:  # a Standard Webhooks sender signs with its subscriber's secret
        secret = provider.subscriptions.get(body["target_url"])
        if not secret:
            return _error(422, "no outbound webhook subscription for this target_url: POST /_sandbox/subscriptions "
                          "with its secret first")
    if not secret:
        return _error(400, f"no {provider.name} app {body['client_id']!r} with a webhook signing secret is "
                      "registered in the simulator")
    return secret


def _parse(request: Request) -> dict | str:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return "the body must be a JSON object"
    unknown = set(body) - set(FIELDS)
    if unknown:
        return f"unknown fields: {', '.join(sorted(unknown))}"
    missing = [f for f in FIELDS[:5] if not isinstance(body.get(f), str) or not body[f].strip()]
    if missing:
        return f"required (non-empty strings): {', '.join(missing)}"
    if body.get("resource_id") is not None and not isinstance(body["resource_id"], str):
        return "resource_id must be a string"
    target = urlsplit(body["target_url"])
    if target.scheme not in ("http", "https") or not target.hostname:
        return "target_url must be an http(s) URL"
    return body


def handle(request: Request, path: str, providers: dict[str, Provider], authority: Authority) -> Response:
    if path == SUBSCRIPTIONS and request.method == "POST":
        return _subscribe(request, providers)
    if path != PATH:
        return _error(404, "no such control endpoint in the simulator")
    if request.method == "GET":
        return json_response({"events": {name: sorted(events) for name, events in EVENTS.items()}})
    if request.method != "POST":
        return _error(405, "method not allowed")
    body = _parse(request)
    if isinstance(body, str):
        return _error(400, body)
    provider = providers.get(body["provider"])
    if provider is None or body["provider"] not in EVENTS:
        return _error(400, f"no simulator emits webhooks for {body['provider']!r}; known: {', '.join(EVENTS)}")
    if body["event"] not in EVENTS[provider.name]:
        return _error(400, f"the {provider.name} simulator emits no {body['event']!r} event; it emits: "
                      f"{', '.join(EVENTS[provider.name])}")
    secret = _secret_before_the_event(provider, authority.app(provider.name, body["client_id"]), body)
    if isinstance(secret, Response):
        return secret
    try:
        emission = emit(provider, body["event"], account=body["account"], resource_id=body.get("resource_id"))
    except EventRefused as exc:
        return _error(422, str(exc))
    if provider.name == "asana":  # the task is complete whether or not anyone is subscribed to hear of it
        secret = _asana_hook_secret(provider, body["target_url"])
        if isinstance(secret, Response):
            return secret
    payload, headers = signing.sign(provider.name, body["target_url"], emission.payload, secret, **emission.options)
    answer = {"provider": provider.name, "event": body["event"], "account": emission.account,
              "resource_id": emission.resource_id, "changed": emission.changed}
    try:
        delivered = requests.post(body["target_url"], data=payload, headers=headers, timeout=15,
                                  allow_redirects=False)
    except requests.RequestException as exc:
        return json_response({**answer, "error": f"the delivery could not be made: {type(exc).__name__}"}, 502)
    return json_response({**answer, "status": delivered.status_code, "delivered": delivered.ok,
                          "response": _short(delivered)})


def _short(response: requests.Response):
    try:
        return response.json()
    except (ValueError, json.JSONDecodeError):
        return response.text[:500]
