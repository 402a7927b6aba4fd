"""The consent cookie on the wire: set on the initiating admin's authenticated answer, read and cleared by the
OAuth callback (the binding itself is `core.connections.consent_binding`).

Invariant: the cookie is HttpOnly, SameSite=Lax (sent on the provider's top-level redirect back, never on a
cross-site subrequest), scoped to Path=/v1/oauth, lives as long as the state (10 minutes), and is Secure whenever
Zixly is served over https. It is never set on an answer to an unauthenticated request.
"""
from __future__ import annotations

from flask import Response, after_this_request, request

from core.connections import consent_binding
from core.connections.consent_binding import BrowserCookie
from core.connections.oauth import STATE_TTL
from core.platform.runtime import settings


def _secure() -> bool:
    base = settings().public_base_url
    return base.lower().startswith("https://") if base else request.is_secure


def set_on_answer(cookie: BrowserCookie | None) -> None:
    """Have this request's answer set the flow's cookie (nothing for API-mode consents)."""
    if cookie is None:
        return

    @after_this_request
    def _set(response: Response) -> Response:
        response.set_cookie(cookie.name, cookie.nonce, max_age=STATE_TTL, path=consent_binding.COOKIE_PATH,
                            secure=_secure(), httponly=True, samesite="Lax")
        return response


def take_from_callback(state: str) -> str | None:
    """The nonce this browser holds for the flow named by `state`; the answer clears the cookie (the state is
    spent by this callback whatever its outcome)."""
    if not state:
        return None
    name = consent_binding.cookie_name(state)
    nonce = request.cookies.get(name)
    if nonce is not None:
        @after_this_request
        def _clear(response: Response) -> Response:
            response.delete_cookie(name, path=consent_binding.COOKIE_PATH, secure=_secure(), httponly=True,
                                   samesite="Lax")
            return response
    return nonce
