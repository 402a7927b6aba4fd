"""The errors connection services raise (each with its problem code)."""
from __future__ import annotations

from core.platform.errors import BadRequest, Conflict, Forbidden, Invalid, NotFound


class AccountAlreadyConnected(Conflict):
    code = "account-already-connected"


class ConnectionNotFound(NotFound):
    code = "connection-not-found"


class ConnectionNotUsable(Conflict):
    code = "connection-not-usable"


class ConsentFromAnotherBrowser(Forbidden):
    """A browser-mode consent came back to a browser without the cookie of the one that started it."""

    code = "oauth-consent-elsewhere"


class InvalidConnectionOptions(Invalid):
    code = "invalid-connection-options"


class OAuthStateInvalid(BadRequest):
    code = "oauth-state-invalid"


class ProviderNotConfigured(Invalid):
    """Zixly has no app of its own for this provider here: the request can still succeed with the tenant's own
    app (`app.client_id`, `app.client_secret`), so this is the caller's to fix (422), not an outage."""

    code = "provider-not-configured"
