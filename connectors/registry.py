"""Every provider by name: its webhook scheme and its connector. Adding one is a module plus a line in each map."""
from __future__ import annotations

from connectors.asana import AsanaConnector, AsanaScheme
from connectors.base import WebhookScheme
from connectors.env import ConnectorEnv
from connectors.hubspot import HubSpotConnector, HubSpotScheme
from connectors.oauth import Connector
from connectors.salesforce import SalesforceConnector, SalesforceScheme
from connectors.shopify import ShopifyConnector, ShopifyScheme
from connectors.standard_webhooks import StandardWebhooksScheme
from connectors.xero import XeroConnector, XeroScheme

__all__ = ["APP_HOOK_PROVIDERS", "CONNECTORS", "PROVIDERS", "SCHEMES", "ConnectorEnv", "UnknownProvider",
           "get_connector", "get_scheme"]


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

# "custom" (Standard Webhooks) verifies clients' own events and has no OAuth connector.
CONNECTORS: dict[str, type[Connector]] = {
    "xero": XeroConnector,
    "hubspot": HubSpotConnector,
    "shopify": ShopifyConnector,
    "asana": AsanaConnector,
    "salesforce": SalesforceConnector,
}


# The one list of providers: what Zixly connects to by OAuth (and has an outbound queue for), and which of them
# send app-level webhooks.
PROVIDERS: tuple[str, ...] = tuple(CONNECTORS)
APP_HOOK_PROVIDERS: tuple[str, ...] = tuple(name for name, scheme in SCHEMES.items() if scheme.app_level)


def get_scheme(provider: str) -> WebhookScheme:
    try:
        return SCHEMES[provider]
    except (KeyError, TypeError):
        raise UnknownProvider(provider) from None


def get_connector(provider: str, env: ConnectorEnv | None = None) -> Connector:
    """A fresh connector (its own HTTP session, so one per thread or task is the natural use)."""
    try:
        cls = CONNECTORS[provider]
    except (KeyError, TypeError):
        raise UnknownProvider(provider) from None
    return cls(env)
