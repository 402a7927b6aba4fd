"""Binding an OAuth consent to the browser of the admin who started it (RFC 6749 §10.12, account-linking CSRF).

Invariant: a consent in `browser` mode completes only in the browser that received the flow's cookie, and that
cookie is only ever handed out in the answer to the initiating admin's *authenticated* request (`X-API-Key` or
`Authorization: Bearer`, headers a link or a cross-site form cannot carry; or the console's form, posted with
the session's CSRF token from the console's own origin, which a cross-site form cannot forge either). The
state record keeps only the SHA-256 of the cookie's random nonce. A URL alone never binds anything: a provider
consent URL sent to someone else comes back to the callback in a browser without the cookie, and that callback
binds nothing.

`api` mode is the explicit opt-in for clients that drive consent themselves (a server holding an API key has
no browser to put a cookie in); then the client answers for opening the consent in its own user's browser.

Each flow has its own cookie name (derived from its state), so two consents started in one browser do not
overwrite each other's cookie.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass

from core.connections.errors import ConsentFromAnotherBrowser
from core.connections.sealing import hmac_equal, token_hash

BROWSER, API = "browser", "api"
MODES = (BROWSER, API)
COOKIE_PREFIX = "zixly_consent_"
COOKIE_PATH = "/v1/oauth"


@dataclass(frozen=True)
class BrowserCookie:
    """What the initiating admin's answer sets: `name=nonce`, HttpOnly, SameSite=Lax, Path=/v1/oauth."""

    name: str
    nonce: str


def cookie_name(state: str) -> str:
    return COOKIE_PREFIX + token_hash(state)[:24]


def new_cookie(state: str) -> BrowserCookie:
    return BrowserCookie(cookie_name(state), secrets.token_urlsafe(32))


def record_fields(mode: str, cookie: BrowserCookie | None) -> dict:
    """The state record's part of the binding: the mode and, for a browser, the hash of its nonce."""
    return {"consent": mode, "browser_hash": token_hash(cookie.nonce) if cookie else None}


def check(record: dict, presented_nonce: str | None) -> None:
    """Refuse a browser-mode callback that does not carry the nonce of the browser that started the flow."""
    if record.get("consent", BROWSER) == API:
        return
    expected = record.get("browser_hash")
    if not expected or not presented_nonce or not hmac_equal(token_hash(presented_nonce), expected):
        raise ConsentFromAnotherBrowser(
            "this consent was completed in a browser other than the one that started it, so nothing was "
            "connected; the admin who started it must ask for a fresh consent (POST "
            "/v1/connections/{id}/authorize) and complete it in that same browser")
