"""Xero: webhooks (base64 HMAC-SHA256 of the body; one delivery may span organisations), OAuth and Accounting API."""
from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from urllib.parse import quote

import requests

from connectors.base import (
    BodyHmacScheme,
    InboundRequest,
    MalformedPayload,
    WebhookEvent,
    parse_json,
    stable_id,
)
from connectors.errors import ConnectorError, InvalidOptions, ReauthRequired, Transient
from connectors.oauth import AccountInfo, ApiContext, Connector, TokenSet
from connectors.ratelimits import Quota, RateLimitInfo

_IDENTIFYING = ("tenantId", "resourceId", "eventType", "eventCategory", "eventDateUtc")


class XeroScheme(BodyHmacScheme):
    provider = "xero"
    app_level = True
    dedup_horizon = timedelta(hours=24)
    signature_header = "x-xero-signature"

    def events(self, request: InboundRequest) -> list[WebhookEvent]:
        body = parse_json(request.body)
        if not isinstance(body, dict) or "events" not in body:
            raise MalformedPayload("expected an object with an events list")
        # Intent-to-receive deliveries carry no events; some tools render that as null rather than [].
        raw = [] if body["events"] is None else body["events"]
        if not isinstance(raw, list):
            raise MalformedPayload("events is not a list")
        return [_event(item) for item in raw]


def _event(item: object) -> WebhookEvent:
    if not isinstance(item, dict) or any(item.get(k) in (None, "") for k in _IDENTIFYING):
        raise MalformedPayload("event lacks its identifying fields")
    # Xero's docs show both "Update" and "UPDATE"; the type is normalised, the id hashes the raw values.
    return WebhookEvent(
        event_id=stable_id(*(item[k] for k in _IDENTIFYING)),
        event_type=f"{item['eventType']}:{item['eventCategory']}".upper(),
        account_id=str(item["tenantId"]),
        resource_id=str(item["resourceId"]),
        occurred_at=str(item["eventDateUtc"]),
        payload=item,
    )


AUTHORIZE_URL = "https://login.xero.com/identity/connect/authorize"
TOKEN_URL = "https://identity.xero.com/connect/token"
REVOCATION_URL = "https://identity.xero.com/connect/revocation"
CONNECTIONS_URL = "https://api.xero.com/connections"
ACCOUNTING_URL = "https://api.xero.com/api.xro/2.0"


class XeroConnector(Connector):
    provider = "xero"
    display_name = "Xero"
    scheme = XeroScheme()
    account_kind = "organisation"
    supports_pkce = True
    # Granular scopes: apps created since March 2026 cannot ask for accounting.transactions any more.
    # offline_access is what makes Xero issue a refresh token.
    scopes = ("offline_access", "accounting.invoices", "accounting.contacts", "accounting.settings.read")
    quota = Quota.per_window(60, 60)  # 60 calls per minute per organisation (and 5,000 a day)
    token_auth_method = "client_secret_basic"
    revocation_endpoint = REVOCATION_URL
    page_size = 100

    def authorize_endpoint(self, options: dict) -> str:
        return AUTHORIZE_URL

    def token_endpoint(self, options: dict) -> str:
        return TOKEN_URL

    def list_accounts(self, ctx_or_tokens: ApiContext | TokenSet, options: dict | None = None) -> list[AccountInfo]:
        # One consent can connect several organisations; each connection names its tenantId.
        connections = self.api("GET", CONNECTIONS_URL, ctx_or_tokens) or []
        return [
            AccountInfo(str(c["tenantId"]), c.get("tenantName"),
                        {"connection_id": c.get("id"), "tenant_type": c.get("tenantType"),
                         "auth_event_id": c.get("authEventId")})
            for c in connections
            if isinstance(c, dict) and c.get("tenantId") and c.get("tenantType", "ORGANISATION") == "ORGANISATION"
        ]

    def test(self, ctx: ApiContext) -> dict:
        org = _first(self._accounting("GET", "/Organisation", ctx), "Organisations")
        return {"account_id": org.get("OrganisationID"), "name": org.get("Name")}

    def classify(self, response: requests.Response, info: RateLimitInfo) -> ConnectorError | None:
        # The organisation disconnected the app (or the user lost access to it): only reconnecting helps.
        if response.status_code == 403 and "AuthorizationUnsuccessful" in response.text:
            return ReauthRequired(self.provider, "the organisation is no longer connected")
        return None

    # --- Accounting API ---------------------------------------------------------------------------------------
    def get_invoice(self, ctx: ApiContext, invoice_id: str) -> dict:
        return _first(self._accounting("GET", f"/Invoices/{quote(str(invoice_id), safe='')}", ctx), "Invoices")

    def list_invoices_modified_since(self, ctx: ApiContext, since: datetime) -> Iterator[dict]:
        stamp = since.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") if since.tzinfo else \
            since.strftime("%Y-%m-%dT%H:%M:%S")
        page = 1
        while True:
            body = self._accounting("GET", "/Invoices", ctx, headers={"If-Modified-Since": stamp},
                                    params={"page": page, "pageSize": self.page_size}, ok=(304,)) or {}
            invoices = body.get("Invoices") or []
            yield from invoices
            page_count = (body.get("pagination") or {}).get("pageCount")
            if len(invoices) < self.page_size or (page_count is not None and page >= page_count):
                return
            page += 1

    def get_contact(self, ctx: ApiContext, contact_id: str) -> dict:
        return _first(self._accounting("GET", f"/Contacts/{quote(str(contact_id), safe='')}", ctx), "Contacts")

    def find_contacts_by_email(self, ctx: ApiContext, email: str) -> list[dict]:
        if '"' in email or "\\" in email:  # never let input rewrite the where expression
            raise InvalidOptions({"email": "not a plain email address"})
        body = self._accounting("GET", "/Contacts", ctx, params={"where": f'EmailAddress=="{email}"'}) or {}
        return list(body.get("Contacts") or [])

    def create_contact(self, ctx: ApiContext, contact: dict, idempotency_key: str | None = None) -> dict:
        return _first(self._create("/Contacts", "Contacts", contact, ctx, idempotency_key), "Contacts")

    def create_invoice(self, ctx: ApiContext, invoice: dict, idempotency_key: str | None = None) -> dict:
        return _first(self._create("/Invoices", "Invoices", invoice, ctx, idempotency_key), "Invoices")

    def _create(self, path: str, key: str, item: dict, ctx: ApiContext, idempotency_key: str | None):
        # PUT only creates. Without an Idempotency-Key a retried create could make a duplicate, so no retries.
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self._accounting("PUT", path, ctx, json={key: [item]}, headers=headers,
                                idempotent=bool(idempotency_key))

    def _accounting(self, method: str, path: str, ctx: ApiContext, **kwargs):
        if not ctx.account_id:
            raise InvalidOptions({"account_id": "Xero calls need the organisation's tenantId"})
        headers = {"xero-tenant-id": ctx.account_id, **kwargs.pop("headers", {})}
        return self.api(method, f"{ACCOUNTING_URL}{path}", ctx, headers=headers, **kwargs)


def _first(body: object, key: str) -> dict:
    items = body.get(key) if isinstance(body, dict) else None
    if not isinstance(items, list) or not items or not isinstance(items[0], dict):
        raise Transient("xero", f"response has no {key}")
    return items[0]
