"""HubSpot: webhooks (v3 timestamped HMAC; legacy v1/v2 only where configured), OAuth, and the CRM calls workflows need.

v1/v2 signatures carry no timestamp, so a captured request replays forever, and accepting them beside v3 lets
anyone who strips the v3 headers downgrade a delivery to them. A scheme accepts only the legacy versions it is
built with (none by default); with v3 headers present, only v3 counts.
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta, timezone
from urllib.parse import quote

import requests

from connectors.base import (
    InboundRequest,
    MalformedPayload,
    VerificationFailed,
    WebhookEvent,
    WebhookScheme,
    b64,
    check_fresh,
    hmac_sha256,
    optional_str,
    parse_json,
    parse_timestamp,
    require_header,
    signature_matches,
)
from connectors.errors import ConnectorError, NotFound, RateLimited, Transient
from connectors.oauth import AccountInfo, ApiContext, AppCredentials, Connector, TokenSet
from connectors.ratelimits import Quota, RateLimitInfo

V3_HEADER = "X-HubSpot-Signature-v3"
TIMESTAMP_HEADER = "X-HubSpot-Request-Timestamp"
LEGACY_HEADER = "X-HubSpot-Signature"
VERSION_HEADER = "X-HubSpot-Signature-Version"
TOLERANCE = timedelta(minutes=5)
LEGACY_VERSIONS = ("v1", "v2")

# HubSpot signs the URI with exactly these escapes decoded (and no others), per its v3 validation docs.
_V3_DECODED = {"%3A": ":", "%2F": "/", "%3F": "?", "%40": "@", "%21": "!", "%24": "$",
               "%27": "'", "%28": "(", "%29": ")", "%2A": "*", "%2C": ",", "%3B": ";"}
_V3_ESCAPE = re.compile("|".join(_V3_DECODED), re.IGNORECASE)


class HubSpotScheme(WebhookScheme):
    provider = "hubspot"
    app_level = True
    dedup_horizon = timedelta(hours=24)

    def __init__(self, legacy_versions: Sequence[str] = ()) -> None:
        unknown = set(legacy_versions) - set(LEGACY_VERSIONS)
        if unknown:
            raise ValueError(f"unknown HubSpot signature versions {sorted(unknown)}; legacy ones are {LEGACY_VERSIONS}")
        self.legacy_versions = frozenset(legacy_versions)

    def _verify(self, request: InboundRequest, secrets: Sequence[bytes], now: float) -> None:
        if request.header(V3_HEADER) is not None or not self.legacy_versions:
            _verify_v3(request, secrets, now)
        else:
            _verify_legacy(request, secrets, self.legacy_versions)

    def events(self, request: InboundRequest) -> list[WebhookEvent]:
        body = parse_json(request.body)
        if not isinstance(body, list):
            raise MalformedPayload("expected a JSON array of events")
        return [_event(item) for item in body]


def v3_uri(url: str) -> str:
    return _V3_ESCAPE.sub(lambda m: _V3_DECODED[m.group(0).upper()], url)


def _verify_v3(request: InboundRequest, secrets: Sequence[bytes], now: float) -> None:
    provided = require_header(request, V3_HEADER)
    timestamp = require_header(request, TIMESTAMP_HEADER)
    check_fresh(parse_timestamp(timestamp) / 1000, now, TOLERANCE)
    message = (request.method.upper() + v3_uri(request.url)).encode() + request.body + timestamp.encode()
    if not signature_matches(provided, [b64(hmac_sha256(key, message)) for key in secrets]):
        raise VerificationFailed("signature mismatch")


def _verify_legacy(request: InboundRequest, secrets: Sequence[bytes], allowed: frozenset[str]) -> None:
    provided = require_header(request, LEGACY_HEADER)
    version = require_header(request, VERSION_HEADER).lower()
    if version in LEGACY_VERSIONS and version not in allowed:
        raise VerificationFailed(f"{version} signatures are not accepted here; HubSpot's v3 is required")
    if version == "v1":
        suffix = request.body
    elif version == "v2":
        suffix = (request.method.upper() + request.url).encode() + request.body
    else:
        raise VerificationFailed("unsupported signature version")
    expected = [hashlib.sha256(key + suffix).hexdigest() for key in secrets]
    if not signature_matches(provided.lower(), expected):
        raise VerificationFailed("signature mismatch")


def _event(item: object) -> WebhookEvent:
    if not isinstance(item, dict) or item.get("eventId") is None:
        raise MalformedPayload("event lacks eventId")
    return WebhookEvent(
        event_id=str(item["eventId"]),
        event_type=str(item.get("subscriptionType") or "unknown"),
        account_id=optional_str(item.get("portalId")),
        resource_id=optional_str(item.get("objectId")),
        occurred_at=optional_str(item.get("occurredAt")),
        payload=item,
    )


AUTHORIZE_URL = "https://app.hubspot.com/oauth/authorize"
API_URL = "https://api.hubapi.com"
# The v1 OAuth endpoints (sunset announced for February 2027; the dated /oauth/2026-03/* API replaces them).
TOKEN_URL = f"{API_URL}/oauth/v1/token"
ACCESS_TOKEN_INFO_URL = f"{API_URL}/oauth/v1/access-tokens/"
REFRESH_TOKENS_URL = f"{API_URL}/oauth/v1/refresh-tokens/"
# HubSpot-defined association type ids (v4 association types), used when a note is created.
NOTE_TO_CONTACT = 202
NOTE_TO_DEAL = 214
# Without Retry-After a 429 names its policy; the daily limit resets at the portal's midnight, unknown here.
_POLICY_WAIT = {"SECONDLY": 1.0, "TEN_SECONDLY_ROLLING": 10.0, "DAILY": 3600.0}


class HubSpotConnector(Connector):
    provider = "hubspot"
    display_name = "HubSpot"
    scheme = HubSpotScheme()
    account_kind = "portal"
    supports_pkce = True
    scopes = ("oauth", "crm.objects.contacts.read", "crm.objects.contacts.write",
              "crm.objects.deals.read", "crm.objects.deals.write")
    search_page_size = 100
    quota = Quota.per_window(100, 10)  # OAuth apps: 110 per 10 s per portal; kept a little under

    def authorize_endpoint(self, options: dict) -> str:
        return AUTHORIZE_URL

    def token_endpoint(self, options: dict) -> str:
        return TOKEN_URL

    def list_accounts(self, ctx_or_tokens: ApiContext | TokenSet, options: dict | None = None) -> list[AccountInfo]:
        tokens = ctx_or_tokens.tokens if isinstance(ctx_or_tokens, ApiContext) else ctx_or_tokens
        info = self.http.json("GET", ACCESS_TOKEN_INFO_URL + quote(tokens.access_token, safe=""),
                              headers={"Accept": "application/json"})
        if not isinstance(info, dict) or info.get("hub_id") is None:
            raise Transient(self.provider, "token information has no hub_id")
        return [AccountInfo(str(info["hub_id"]), info.get("hub_domain"),
                            {"user": info.get("user"), "scopes": info.get("scopes")})]

    def revoke(self, app: AppCredentials, tokens: TokenSet, options: dict | None = None) -> bool:
        # Deletes the refresh token; access tokens already issued stay valid until they expire (<= 30 min).
        if not tokens.refresh_token:
            return False
        try:
            self.http.request("DELETE", REFRESH_TOKENS_URL + quote(tokens.refresh_token, safe=""))
        except NotFound:
            pass
        return True

    def test(self, ctx: ApiContext) -> dict:
        details = self.api("GET", f"{API_URL}/account-info/v3/details", ctx) or {}
        return {"account_id": str(details.get("portalId")), "name": details.get("uiDomain"),
                "time_zone": details.get("timeZone")}

    def classify(self, response: requests.Response, info: RateLimitInfo) -> ConnectorError | None:
        if response.status_code != 429 or info.retry_after is not None:
            return None
        try:
            policy = response.json().get("policyName")
        except (ValueError, AttributeError):
            policy = None
        wait = _POLICY_WAIT.get(policy) or info.wait_seconds()
        return RateLimited(self.provider, wait, f"rate limited ({policy or 'unknown policy'})", info)

    # --- CRM API ------------------------------------------------------------------------------------------------
    def search_contacts_by_email(self, ctx: ApiContext, email: str,
                                 properties: tuple[str, ...] = ("email", "firstname", "lastname")) -> Iterator[dict]:
        body = {"filterGroups": [{"filters": [{"propertyName": "email", "operator": "EQ", "value": email}]}],
                "properties": list(properties), "limit": self.search_page_size}
        while True:
            page = self.api("POST", f"{API_URL}/crm/v3/objects/contacts/search", ctx, json=body,
                            idempotent=True) or {}
            yield from page.get("results") or []
            after = ((page.get("paging") or {}).get("next") or {}).get("after")
            if not after:
                return
            body = {**body, "after": after}

    def list_associated_deals(self, ctx: ApiContext, contact_id: str) -> list[str]:
        """Deal ids associated with a contact (CRM v4 associations)."""
        deals, after = [], None
        while True:
            params = {"limit": 500, **({"after": after} if after else {})}
            page = self.api("GET", f"{API_URL}/crm/v4/objects/contacts/{quote(str(contact_id), safe='')}"
                                   "/associations/deals", ctx, params=params) or {}
            deals += [str(r["toObjectId"]) for r in page.get("results") or [] if "toObjectId" in r]
            after = ((page.get("paging") or {}).get("next") or {}).get("after")
            if not after:
                return deals

    def get_deal(self, ctx: ApiContext, deal_id: str, properties: tuple[str, ...] = ()) -> dict:
        params = {"properties": ",".join(properties)} if properties else None
        return self.api("GET", self._deal_url(deal_id), ctx, params=params)

    def update_deal(self, ctx: ApiContext, deal_id: str, properties: dict) -> dict:
        # Setting the same properties twice leaves the same deal, so a retry is safe.
        return self.api("PATCH", self._deal_url(deal_id), ctx, json={"properties": properties}, idempotent=True)

    def add_note(self, ctx: ApiContext, body: str, *, deal_id: str | None = None, contact_id: str | None = None,
                 timestamp: datetime | None = None) -> dict:
        when = (timestamp or datetime.now(timezone.utc)).astimezone(timezone.utc)
        associations = [_association(record, type_id)
                        for record, type_id in ((deal_id, NOTE_TO_DEAL), (contact_id, NOTE_TO_CONTACT)) if record]
        payload = {"properties": {"hs_timestamp": when.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
                                  "hs_note_body": body},
                   "associations": associations}
        return self.api("POST", f"{API_URL}/crm/v3/objects/notes", ctx, json=payload)

    def _deal_url(self, deal_id: str) -> str:
        return f"{API_URL}/crm/v3/objects/deals/{quote(str(deal_id), safe='')}"


def _association(record_id: str, type_id: int) -> dict:
    return {"to": {"id": str(record_id)},
            "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}]}
