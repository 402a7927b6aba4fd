"""What the console tells a person whose consent failed: one fixed sentence per short reason the OAuth
callback sends back (`consent_error`). Nothing the provider or the URL says is ever shown, only these."""
from __future__ import annotations

MESSAGES = {
    "access_denied": "Consent was declined at {provider}, so nothing changed. To connect, give consent again and "
                     "approve access at {provider}.",
    "temporarily_unavailable": "{provider} could not take the consent just now, so nothing changed. Try again in "
                               "a few minutes.",
    "server_error": "{provider} had a problem with the consent, so nothing changed. Try again in a few minutes.",
    "provider_error": "{provider} did not give consent, so nothing changed. Try again; if it keeps failing, "
                      "check the app's access at {provider}.",
    "other_browser": "This consent came back to a different browser from the one that started it, so nothing was "
                     "connected. Start the consent again here and finish it in this same browser.",
    "state_invalid": "This consent had expired or was already used, so nothing changed. Start the consent again "
                     "and finish it within 10 minutes.",
    "unavailable": "Zixly could not check this consent just now, so nothing changed. Try again in a minute.",
    "account_taken": "That {provider} account is already connected to another connection, so nothing changed. "
                     "Use that connection, or delete it first.",
    "wrong_account": "You gave consent for a different {provider} account than the one this connection is bound "
                     "to, so nothing changed. Reconnect and choose the same account.",
    "connection_gone": "The connection this consent was for no longer exists. Connect {provider} again.",
    "provider_unavailable": "{provider} could not be reached to finish the consent, so nothing changed. Try again "
                            "in a few minutes.",
    "exchange_refused": "{provider} refused to finish the consent, so nothing changed. Try again; if it keeps "
                        "failing, check the app's settings at {provider}.",
}
FALLBACK = "The consent did not complete, so nothing changed. Start it again."


def message_for(reason: str, provider: str | None) -> str:
    template = MESSAGES.get(reason)
    if template is None:
        return FALLBACK
    return template.format(provider=provider or "the provider")
