"""Shopify: per-shop OAuth and the Admin REST API; its webhooks are connectors.shopify_webhooks."""
from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from connectors.errors import InvalidOptions, Permanent
from connectors.hosts import ensure_public_host, validate_shop_domain
from connectors.oauth import AccountInfo, ApiContext, AppCredentials, Connector, TokenSet
from connectors.ratelimits import Quota
from connectors.shopify_webhooks import ShopifyScheme


API_VERSION = "2025-10"


class ShopifyConnector(Connector):
    provider = "shopify"
    display_name = "Shopify"
    scheme = ShopifyScheme()
    account_kind = "shop"
    supports_pkce = False
    scopes = ("read_orders",)
    quota = Quota(40, 2.0)  # REST Admin API leaky bucket: 40 requests, leaking 2 per second
    scope_separator = ","
    option_fields = ("shop",)
    api_version = API_VERSION

    def validate_options(self, options: Mapping[str, Any] | None) -> dict:
        super().validate_options(options)
        shop = _shop_of(options)
        if not self.env.simulated:
            ensure_public_host(shop, self.env.resolver)
        return {"shop": shop}

    def authorize_endpoint(self, options: dict) -> str:
        return f"https://{options['shop']}/admin/oauth/authorize"

    def token_endpoint(self, options: dict) -> str:
        return f"https://{options['shop']}/admin/oauth/access_token"

    def token_params(self, options: dict) -> dict:
        # Expiring offline tokens (1 hour, with a rotating refresh token); public apps must use them from 2027.
        return {"expiring": "1"}

    def verify_callback(self, app: AppCredentials, params: dict, options: dict) -> None:
        """Shopify signs the callback query: hex HMAC-SHA256 of the sorted `key=value` pairs, hmac left out."""
        provided = params.get("hmac")
        if not isinstance(provided, str) or not provided:
            raise Permanent(self.provider, 400, "callback is not signed")
        message = "&".join(f"{key}={params[key]}" for key in sorted(params) if key not in ("hmac", "signature"))
        expected = hmac.new(app.client_secret.encode(), message.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(provided.lower().encode(), expected.encode()):
            raise Permanent(self.provider, 400, "callback signature mismatch")
        try:
            shop = validate_shop_domain(params.get("shop"))
        except InvalidOptions:
            raise InvalidOptions({"shop": "callback names no valid shop"}) from None
        if shop != options["shop"]:
            raise InvalidOptions({"shop": "callback came from a different shop"})

    def auth_headers(self, tokens: TokenSet) -> dict[str, str]:
        return {"X-Shopify-Access-Token": tokens.access_token}

    def list_accounts(self, ctx_or_tokens: ApiContext | TokenSet, options: dict | None = None) -> list[AccountInfo]:
        options = options or getattr(ctx_or_tokens, "options", None)
        shop = self._shop(ctx_or_tokens, options)
        return [AccountInfo(_shop_of(options), shop.get("name"), {"shop_id": shop.get("id")})]

    def test(self, ctx: ApiContext) -> dict:
        shop = self._shop(ctx, ctx.options)
        return {"account_id": shop.get("myshopify_domain"), "name": shop.get("name")}

    def revoke(self, app: AppCredentials, tokens: TokenSet, options: dict | None = None) -> bool:
        # Shopify has no token revocation endpoint; the documented way is to uninstall the app from the shop.
        self.api("DELETE", f"https://{_shop_of(options)}/admin/api_permissions/current.json", tokens)
        return True

    def get_order(self, ctx: ApiContext, order_id: int | str) -> dict:
        body = self.api("GET", self._admin(ctx.options, f"/orders/{quote(str(order_id), safe='')}.json"), ctx)
        return (body or {}).get("order") or {}

    def _shop(self, ctx_or_tokens, options: dict) -> dict:
        return (self.api("GET", self._admin(options, "/shop.json"), ctx_or_tokens) or {}).get("shop") or {}

    def _admin(self, options: dict | None, path: str) -> str:
        return f"https://{_shop_of(options)}/admin/api/{self.api_version}{path}"


def _shop_of(options: Mapping[str, Any] | None) -> str:
    """The stored shop, pattern-checked again; the address itself is checked by the HTTP client on every call."""
    if not options or "shop" not in options:
        raise InvalidOptions({"shop": "is required (example.myshopify.com)"})
    return validate_shop_domain(options["shop"])
