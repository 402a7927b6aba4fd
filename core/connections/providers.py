"""The provider side of a connection: its connector plugin, the app credentials (the tenant's own app,
else Zixly's), the OAuth redirect URI, and hooks called after every provider call."""
from __future__ import annotations

import base64
import json
import logging
import secrets
import threading
import time

from connectors.env import ConnectorEnv
from connectors.errors import InvalidOptions
from connectors.oauth import AppCredentials
from connectors.registry import CONNECTORS, SCHEMES, UnknownProvider, get_connector
from connectors.standard_webhooks import StandardWebhooksScheme
from core.connections.errors import ProviderNotConfigured
from core.connections.models import Connection
from core.connections.sealing import open_field
from core.platform import metrics
from core.platform.errors import Invalid
from core.platform.runtime import aws_client, settings

log = logging.getLogger("zixly.connections")


WEBHOOK_ONLY = ("custom",)  # Standard Webhooks senders: no OAuth, active at once with a generated secret


_response_hooks: list = [metrics.observe_outbound]


def _on_response(provider, method, status, seconds) -> None:
    for hook in _response_hooks:
        try:
            hook(provider, method, status, seconds)
        except Exception:  # metrics must never break a provider call
            log.debug("response hook failed", exc_info=True)


def add_response_hook(hook) -> None:
    """Also call `hook(provider, method, status, seconds)` after every provider call (core.bootstrap attaches
    the delivery's); adding one twice has no effect."""
    if hook not in _response_hooks:
        _response_hooks.append(hook)


def connector_env() -> ConnectorEnv:
    return ConnectorEnv(simulator_url=settings().provider_simulator_url, on_response=_on_response)


def connector(provider: str):
    try:
        return get_connector(provider, connector_env())
    except UnknownProvider:
        raise Invalid(f"unknown provider {provider!r}; known: {', '.join(sorted(CONNECTORS))}") from None


_app_cache: dict[str, tuple[float, dict]] = {}


_app_lock = threading.Lock()


def _secret_manager_credentials() -> dict:
    secret_id = settings().provider_credentials_secret_id
    with _app_lock:
        cached = _app_cache.get(secret_id)
        if cached and cached[0] > time.monotonic():
            return cached[1]
    try:
        doc = json.loads(aws_client("secretsmanager").get_secret_value(SecretId=secret_id)["SecretString"])
    except Exception as exc:
        raise ProviderNotConfigured(f"provider credentials unavailable: {type(exc).__name__}") from None
    with _app_lock:
        _app_cache[secret_id] = (time.monotonic() + 300, doc)
    return doc


def app_credentials(provider: str, conn: Connection | None = None) -> AppCredentials:
    """The tenant's own app when it brought one, else Zixly's app for the provider."""
    if conn is not None and conn.app_client_id:
        return AppCredentials(conn.app_client_id, open_field(conn, "app_secret") or "")
    found = settings().provider_credentials.get(provider)
    if found is None and settings().provider_credentials_secret_id:
        entry = _secret_manager_credentials().get(provider)
        found = (entry["client_id"], entry["client_secret"]) if entry else None
    if not found:
        raise ProviderNotConfigured(f"Zixly has no {provider} app configured; bring your own app "
                                    "(app.client_id and app.client_secret)")
    return AppCredentials(*found)


def redirect_uri() -> str:
    base = (settings().public_base_url or "http://127.0.0.1:8000").rstrip("/")
    return f"{base}/v1/oauth/callback"


def new_secret(provider: str) -> str:
    """A webhook secret Zixly makes for a connection, in the form its provider's scheme reads: Standard Webhooks
    senders (custom, Salesforce) take `whsec_` + base64, whose decoded bytes are the key."""
    raw = secrets.token_bytes(24)
    standard = provider in WEBHOOK_ONLY or isinstance(SCHEMES.get(provider), StandardWebhooksScheme)
    return "whsec_" + base64.b64encode(raw).decode() if standard else secrets.token_urlsafe(32)


def options_message(exc: InvalidOptions) -> str:
    errors = getattr(exc, "errors", None) or {}
    return "; ".join(f"{k}: {v}" for k, v in errors.items()) or str(exc)
