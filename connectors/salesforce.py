"""Salesforce (Revenova): outbound calls signed with Standard Webhooks; OAuth web-server flow and the REST API."""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote, urlsplit

import requests

from connectors.errors import ConnectorError, InvalidOptions, Permanent, RateLimited
from connectors.hosts import ensure_public_host, validate_instance_url
from connectors.oauth import AccountInfo, ApiContext, AppCredentials, Connector, TokenSet
from connectors.ratelimits import Quota, RateLimitInfo
from connectors.standard_webhooks import StandardWebhooksScheme

API_VERSION = "v62.0"
DEFAULT_LOGIN_URL = "https://login.salesforce.com"
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,79}\Z")
_RECORD_ID = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?\Z")
# The daily API allocation is a rolling 24 hours; checking again in an hour is the useful granularity.
DAILY_LIMIT_WAIT = 3600.0


class SalesforceScheme(StandardWebhooksScheme):
    provider = "salesforce"


class SalesforceConnector(Connector):
    provider = "salesforce"
    display_name = "Salesforce"
    scheme = SalesforceScheme()
    account_kind = "org"
    supports_pkce = True
    scopes = ("api", "refresh_token")
    quota = Quota.per_window(100_000, 86_400, burst=25)  # the org's rolling 24 h API allowance (Enterprise base)
    option_fields = ("instance_url", "login_url")
    api_version = API_VERSION

    def validate_options(self, options: Mapping[str, Any] | None) -> dict:
        super().validate_options(options)
        options = options or {}
        if not options.get("instance_url") and not options.get("login_url"):
            raise InvalidOptions({"instance_url": "is required (https://example.my.salesforce.com)"})
        clean = {field: validate_instance_url(options[field], field)
                 for field in self.option_fields if options.get(field)}
        if not self.env.simulated:
            for url in clean.values():
                ensure_public_host(urlsplit(url).hostname, self.env.resolver)
        return clean

    def authorize_endpoint(self, options: dict) -> str:
        return f"{_login(options)}/services/oauth2/authorize"

    def token_endpoint(self, options: dict) -> str:
        return f"{_login(options)}/services/oauth2/token"

    def to_tokenset(self, token: dict, app: AppCredentials, options: dict,
                    previous: TokenSet | None = None) -> TokenSet:
        # The identity URL and issued_at come signed with the client secret, so a tampered org id is refused.
        identity, issued_at, signature = token.get("id"), token.get("issued_at"), token.get("signature")
        if identity and issued_at and signature:
            expected = base64.b64encode(hmac.new(app.client_secret.encode(), f"{identity}{issued_at}".encode(),
                                                 hashlib.sha256).digest()).decode()
            if not hmac.compare_digest(str(signature).encode(), expected.encode()):
                raise Permanent(self.provider, 502, "token response signature mismatch")
        if token.get("instance_url"):
            token = {**token, "instance_url": validate_instance_url(token["instance_url"])}
        return super().to_tokenset(token, app, options, previous)

    def revoke(self, app: AppCredentials, tokens: TokenSet, options: dict | None = None) -> bool:
        options = self.validate_options(options or {"instance_url": tokens.extra.get("instance_url")})
        token = tokens.refresh_token or tokens.access_token
        response = self.http.request("POST", f"{_login(options)}/services/oauth2/revoke", data={"token": token},
                                     ok=(400, 401))
        return self.revoked(response)

    def list_accounts(self, ctx_or_tokens: ApiContext | TokenSet, options: dict | None = None) -> list[AccountInfo]:
        # No call needed: the token response names the org in its identity URL (…/id/<orgId>/<userId>).
        tokens = ctx_or_tokens.tokens if isinstance(ctx_or_tokens, ApiContext) else ctx_or_tokens
        parts = urlsplit(str(tokens.extra.get("id") or "")).path.strip("/").split("/")
        if len(parts) < 3 or parts[-3] != "id":
            raise Permanent(self.provider, 502, "token response has no identity URL")
        instance = tokens.extra.get("instance_url")
        return [AccountInfo(parts[-2], urlsplit(instance).hostname if instance else None,
                            {"instance_url": instance, "user_id": parts[-1]})]

    def test(self, ctx: ApiContext) -> dict:
        limits = self._rest("GET", "/limits", ctx) or {}
        daily = limits.get("DailyApiRequests") or {}
        return {"account_id": ctx.account_id, "daily_api_requests": daily}

    def classify(self, response: requests.Response, info: RateLimitInfo) -> ConnectorError | None:
        if response.status_code == 403 and "REQUEST_LIMIT_EXCEEDED" in response.text:
            return RateLimited(self.provider, DAILY_LIMIT_WAIT, "daily API request limit exceeded", info)
        return None

    # --- REST API -----------------------------------------------------------------------------------------------
    def get_object(self, ctx: ApiContext, sobject: str, record_id: str, fields: tuple[str, ...] = ()) -> dict:
        params = {"fields": ",".join(_name(f) for f in fields)} if fields else None
        return self._rest("GET", f"/sobjects/{_name(sobject)}/{_record_id(record_id)}", ctx, params=params)

    def upsert_by_external_id(self, ctx: ApiContext, sobject: str, field: str, value: str, fields: dict) -> dict:
        """Create or update the record whose external id `field` equals `value`; safe to retry."""
        path = f"/sobjects/{_name(sobject)}/{_name(field)}/{quote(str(value), safe='')}"
        body = self._rest("PATCH", path, ctx, json=fields, idempotent=True) or {}
        return {"id": body.get("id"), "created": bool(body.get("created"))}

    def query(self, ctx: ApiContext, soql: str) -> Iterator[dict]:
        page = self._rest("GET", "/query", ctx, params={"q": soql}) or {}
        while True:
            yield from page.get("records") or []
            next_url = page.get("nextRecordsUrl")
            if page.get("done", True) or not next_url:
                return
            if not str(next_url).startswith("/services/data/"):
                raise Permanent(self.provider, 502, "unexpected nextRecordsUrl")
            page = self.api("GET", f"{self._instance(ctx)}{next_url}", ctx) or {}

    def _rest(self, method: str, path: str, ctx: ApiContext, **kwargs):
        return self.api(method, f"{self._instance(ctx)}/services/data/{self.api_version}{path}", ctx, **kwargs)

    def _instance(self, ctx: ApiContext) -> str:
        instance = ctx.tokens.extra.get("instance_url") or (ctx.options or {}).get("instance_url")
        if not instance:
            raise InvalidOptions({"instance_url": "unknown; connect again"})
        return validate_instance_url(instance)


def _login(options: dict) -> str:
    return options.get("login_url") or options.get("instance_url") or DEFAULT_LOGIN_URL


def _name(value: str) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise InvalidOptions({"name": f"not a Salesforce API name: {str(value)[:40]!r}"})
    return value


def _record_id(value: str) -> str:
    if not isinstance(value, str) or not _RECORD_ID.fullmatch(value):
        raise InvalidOptions({"id": "not a Salesforce record id"})
    return value
