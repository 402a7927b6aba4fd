"""The webhook scheme for each provider name; adding a provider is one module plus one line here."""
from __future__ import annotations

from connectors.asana import AsanaScheme
from connectors.base import WebhookScheme
from connectors.hubspot import HubSpotScheme
from connectors.salesforce import SalesforceScheme
from connectors.shopify import ShopifyScheme
from connectors.standard_webhooks import StandardWebhooksScheme
from connectors.xero import XeroScheme


class UnknownProvider(KeyError):
    pass


SCHEMES: dict[str, WebhookScheme] = {
    "xero": XeroScheme(),
    "hubspot": HubSpotScheme(),
    "shopify": ShopifyScheme(),
    "asana": AsanaScheme(),
    "salesforce": SalesforceScheme(),
    "custom": StandardWebhooksScheme(),
}


def get_scheme(provider: str) -> WebhookScheme:
    try:
        return SCHEMES[provider]
    except (KeyError, TypeError):
        raise UnknownProvider(provider) from None
