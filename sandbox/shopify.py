"""Shopify: per-shop OAuth with a signed callback, expiring offline tokens with rotation, Admin REST API."""
from __future__ import annotations

import base64
import hashlib
import hmac
import time

from werkzeug.wrappers import Request, Response

from sandbox.authority import App, Grant
from sandbox.provider import Provider, json_response, route

DEMO_SHOP = "zixly-demo.myshopify.com"
BUCKET = 40
_SHOP = r"(?P<shop>[a-z0-9][a-z0-9-]*\.myshopify\.com)"
_ADMIN = _SHOP + r"/admin/api/(?P<version>\d{4}-\d{2}|unstable)"
NON_EXPIRING = 10 * 365 * 86400.0


def callback_hmac(secret: str, params: dict) -> str:
    """Shopify's recipe: every query parameter but hmac, sorted, joined as key=value with "&", hex HMAC-SHA256."""
    message = "&".join(f"{k}={params[k]}" for k in sorted(params) if k not in ("hmac", "signature"))
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


class Shopify(Provider):
    name = "shopify"
    access_ttl = 3600.0          # expiring offline tokens last an hour...
    rotate_refresh = True        # ...and each refresh replaces the refresh token
    supports_pkce = False
    checks_redirect_uri = False  # the code exchange takes client_id, client_secret and code only
    routes = (
        route("GET", _SHOP + r"/admin/oauth/authorize", "authorize", api=False),
        route("POST", _SHOP + r"/admin/oauth/access_token", "token", api=False),
        route("DELETE", _SHOP + r"/admin/api_permissions/current\.json", "uninstall"),
        route("GET", _ADMIN + r"/shop\.json", "shop"),
        route("GET", _ADMIN + r"/orders/(?P<order_id>\d+)\.json", "order"),
    )

    def seed(self) -> None:
        self.shops: dict[str, dict] = {}
        self.orders: dict[str, dict[int, dict]] = {}
        self.calls: dict[str, int] = {}
        self.add_shop(DEMO_SHOP)

    def add_shop(self, domain: str) -> dict:
        if domain not in self.shops:
            name = domain.split(".")[0].replace("-", " ").title()
            self.shops[domain] = {"id": 548380009 + len(self.shops), "name": name, "email": f"owner@{domain}",
                                  "domain": domain, "myshopify_domain": domain, "currency": "USD",
                                  "country_code": "US", "plan_name": "basic", "iana_timezone": "America/New_York"}
            self.orders[domain] = {450789469: new_order(450789469)}
        return self.shops[domain]

    # --- OAuth shapes -------------------------------------------------------------------------------------------
    def consent(self, request: Request, host: str, app: App) -> dict:
        self.add_shop(host)
        return {"shop": host}

    def callback_params(self, params: dict, host: str, account: dict, app: App) -> dict:
        store = host.split(".")[0]
        params = {**params, "shop": host, "timestamp": str(int(time.time())),
                  "host": base64.urlsafe_b64encode(f"admin.shopify.com/store/{store}".encode()).decode().rstrip("=")}
        return {**params, "hmac": callback_hmac(app.client_secret, params)}

    def token_request_params(self, request: Request) -> dict:
        params = request.args.to_dict()
        params.update(request.form.to_dict())
        body = request.get_json(silent=True)
        if isinstance(body, dict):
            params.update({k: str(v) for k, v in body.items()})
        return params

    def wants_refresh(self, form: dict) -> bool:
        return form.get("expiring") == "1"

    def ttl_for(self, form: dict) -> float:
        return self.access_ttl if form.get("expiring") == "1" else NON_EXPIRING

    def token_body(self, grant: Grant, access: str, refresh: str | None, app: App, refreshing: bool) -> dict:
        body = {"access_token": access, "scope": grant.scope}
        if refresh:
            body.update({"expires_in": int(self.access_ttl), "refresh_token": refresh,
                         "refresh_token_expires_in": 90 * 86400})
        return body

    def oauth_error(self, error: str, description: str, status: int = 400) -> Response:
        return json_response({"error": error, "error_description": description}, status)

    def authenticate(self, request: Request) -> Grant | None:
        grant = self.authority.live_access(self.name, request.headers.get("X-Shopify-Access-Token"))
        shop = request.path.split("/")[2] if request.path.count("/") > 2 else ""
        return grant if grant is not None and grant.account["shop"] == shop else None

    def unauthorized(self) -> Response:
        return json_response({"errors": "[API] Invalid API key or access token (unrecognized login or wrong "
                                        "password)"}, 401)

    def rate_limited(self, retry_after: float) -> Response:
        return json_response({"errors": "Exceeded 2 calls per second for api client. Reduce request rates to "
                                        "resume uninterrupted service."}, 429,
                             {"Retry-After": f"{float(retry_after):.1f}",
                              "X-Shopify-Shop-Api-Call-Limit": f"{BUCKET}/{BUCKET}"})

    def quota_headers(self, grant: Grant | None) -> dict[str, str]:
        shop = grant.account["shop"] if grant else ""
        self.calls[shop] = self.calls.get(shop, 0) % (BUCKET - 1) + 1
        return {"X-Shopify-Shop-Api-Call-Limit": f"{self.calls[shop]}/{BUCKET}"}

    # --- Admin API ----------------------------------------------------------------------------------------------
    def uninstall(self, request: Request, grant: Grant, shop: str, **_) -> Response:
        # Uninstalling ends every token this app holds for the shop.
        self.authority.revoke(self.name, where=lambda g: g.account.get("shop") == shop
                              and g.client_id == grant.client_id)
        return json_response({})

    def shop(self, request: Request, grant: Grant, shop: str, **_) -> Response:
        return json_response({"shop": self.shops[shop]})

    def order(self, request: Request, grant: Grant, shop: str, order_id: str, **_) -> Response:
        order = self.orders[shop].get(int(order_id))
        if order is None:
            return json_response({"errors": "Not Found"}, 404)
        return json_response({"order": order})


def new_order(order_id: int) -> dict:
    return {"id": order_id, "admin_graphql_api_id": f"gid://shopify/Order/{order_id}", "name": "#1001",
            "order_number": 1001, "email": "bob.norman@mail.example.com", "currency": "USD",
            "financial_status": "paid", "fulfillment_status": None, "total_price": "598.94",
            "subtotal_price": "597.00", "total_tax": "11.94", "created_at": "2024-03-13T16:09:54-04:00",
            "updated_at": "2024-03-13T16:09:54-04:00",
            "customer": {"id": 207119551, "email": "bob.norman@mail.example.com", "first_name": "Bob",
                         "last_name": "Norman"},
            "line_items": [{"id": 466157049, "title": "IPod Nano - 8gb", "quantity": 1, "price": "199.00",
                            "sku": "IPOD2008GREEN", "product_id": 632910392}]}
