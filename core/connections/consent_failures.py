"""A consent that failed, named by one short reason the console turns into a sentence (it never shows the
provider's own text), and where the browser may be sent with it.

Invariant: `return_to` is only ever the path stored server-side with the flow's state at its start, never
anything the callback's query carries; `from_site_page` is true only for a state this site minted for a flow
that returns to one of its own pages (the state's prefix), so an unknown state is sent to a fixed page of this
site at most, never to a place the request names.
"""
from __future__ import annotations

from core.connections.errors import (
    AccountAlreadyConnected,
    ConnectionNotFound,
    ConsentFromAnotherBrowser,
    OAuthStateInvalid,
)
from core.platform.errors import Conflict, Unavailable, UpstreamFailed

RETURNING_STATE_PREFIX = "p."  # a state whose flow returns to a page of this site (the console's)
PROVIDER_ERRORS = ("access_denied", "temporarily_unavailable", "server_error")  # RFC 6749 §4.1.2.1, passed on
REASONS = (*PROVIDER_ERRORS, "provider_error", "other_browser", "state_invalid", "unavailable", "account_taken",
           "wrong_account", "connection_gone", "provider_unavailable", "exchange_refused")


class ConsentFailed(Exception):
    """`error`: the problem the API answers with; `reason`: its short code for a page of this site."""

    def __init__(self, error: Exception, *, reason: str, return_to: str | None = None,
                 connection_id: str | None = None, from_site_page: bool = False):
        super().__init__(str(error))
        self.error, self.reason, self.return_to = error, reason, return_to
        self.connection_id, self.from_site_page = connection_id, from_site_page


def reason_for(error: Exception, params: dict) -> str:
    """The short code of a failed callback (the provider's own error code only when it is a standard one)."""
    if isinstance(error, ConsentFromAnotherBrowser):
        return "other_browser"
    if isinstance(error, OAuthStateInvalid):
        return "state_invalid"
    if isinstance(error, ConnectionNotFound):
        return "connection_gone"
    if params.get("error"):
        return params["error"] if params["error"] in PROVIDER_ERRORS else "provider_error"
    if isinstance(error, AccountAlreadyConnected):
        return "account_taken"
    if isinstance(error, Conflict):
        return "wrong_account"
    if isinstance(error, UpstreamFailed):
        return "provider_unavailable"
    if isinstance(error, Unavailable):
        return "unavailable"
    return "exchange_refused"
