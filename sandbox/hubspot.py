"""HubSpot: OAuth v1 (30-minute tokens, a refresh token that does not rotate) and the CRM v3 object API."""
from __future__ import annotations

import itertools
import time
import uuid
from datetime import datetime, timezone

from werkzeug.wrappers import Request, Response

from sandbox.authority import App, Grant
from sandbox.demo import CUSTOMERS
from sandbox.provider import Provider, json_response, route

HUB_ID = 7700111
HUB_DOMAIN = "zixly-demo.hubspot.com"
NOTE_TO_CONTACT, NOTE_TO_DEAL = 202, 214
INTERVAL_MS, INTERVAL_MAX = 10000, 110


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class HubSpot(Provider):
    name = "hubspot"
    access_ttl = 1800.0
    rotate_refresh = False
    routes = (
        route("GET", r"app\.hubspot\.com/oauth/authorize", "authorize", api=False),
        route("POST", r"api\.hubapi\.com/oauth/v1/token", "token", api=False),
        route("GET", r"api\.hubapi\.com/oauth/v1/access-tokens/(?P<token>[^/]+)", "access_token_info",
              auth=False),
        route("DELETE", r"api\.hubapi\.com/oauth/v1/refresh-tokens/(?P<token>[^/]+)", "delete_refresh_token",
              api=False),
        route("GET", r"api\.hubapi\.com/account-info/v3/details", "account_details"),
        route("POST", r"api\.hubapi\.com/crm/v3/objects/contacts/search", "search_contacts"),
        route("GET", r"api\.hubapi\.com/crm/v3/objects/deals/(?P<deal_id>[^/]+)", "get_deal"),
        route("PATCH", r"api\.hubapi\.com/crm/v3/objects/deals/(?P<deal_id>[^/]+)", "update_deal"),
        route("POST", r"api\.hubapi\.com/crm/v3/objects/notes", "create_note"),
        route("GET", r"api\.hubapi\.com/crm/v4/objects/contacts/(?P<contact_id>[^/]+)/associations/deals",
              "associated_deals"),
    )

    def seed(self) -> None:
        self.contacts: dict[str, dict] = {}
        self.deals: dict[str, dict] = {}
        self.notes: dict[str, dict] = {}
        self.ids = itertools.count(1051)
        self.interval_ms = INTERVAL_MS
        for first, last, email in (("Jane", "Doe", "jane@example.com"), ("Sam", "Lee", "shared@example.com"),
                                   ("Kim", "Lee", "shared@example.com"), ("Alex", "Roe", "shared@example.com")):
            self._store(self.contacts, {"firstname": first, "lastname": last, "email": email})
        self._store(self.deals, {"dealname": "Acme renewal", "amount": "1500", "dealstage": "contractsent",
                                 "pipeline": "default"}, object_id="9001")
        self.contact_deals: dict[str, list[str]] = {next(iter(self.contacts)): ["9001"]}  # Jane's deal
        for customer in CUSTOMERS:  # the customers Xero bills (sandbox.demo), each with an open deal
            first, _, last = customer.name.partition(" ")
            person = self._store(self.contacts, {"firstname": first, "lastname": last, "email": customer.email,
                                                 "company": customer.name})
            self._store(self.deals, {"dealname": f"{customer.name} renewal", "amount": customer.deal_amount,
                                     "dealstage": "contractsent", "pipeline": "default"}, object_id=customer.deal_id)
            self.contact_deals[person["id"]] = [customer.deal_id]

    def _store(self, table: dict, properties: dict, object_id: str | None = None) -> dict:
        now = time.time()
        object_id = object_id or str(next(self.ids))
        record = {"id": object_id, "properties": {**properties, "hs_object_id": object_id, "createdate": _iso(now),
                                                  "hs_lastmodifieddate": _iso(now)},
                  "createdAt": _iso(now), "updatedAt": _iso(now), "archived": False}
        table[object_id] = record
        return record

    # --- OAuth shapes -------------------------------------------------------------------------------------------
    def consent(self, request: Request, host: str, app: App) -> dict:
        return {"hub_id": HUB_ID, "user": "admin@zixly-demo.example", "user_id": 4242}

    def token_body(self, grant: Grant, access: str, refresh: str | None, app: App, refreshing: bool) -> dict:
        return {"token_type": "bearer", "refresh_token": refresh or self._refresh_of(grant),
                "access_token": access, "expires_in": int(self.access_ttl)}

    def _refresh_of(self, grant: Grant) -> str:
        return next(t for t, issued in self.authority.refresh.items() if issued.grant is grant)

    def oauth_error(self, error: str, description: str, status: int = 400) -> Response:
        # HubSpot's own status code stays alongside the RFC 6749 fields (its standardised error responses).
        legacy = {"invalid_grant": "BAD_AUTH_CODE", "invalid_client": "BAD_CLIENT_ID"}.get(error, "BAD_REQUEST")
        return json_response({"status": legacy, "message": description, "error": error,
                              "error_description": description, "correlationId": str(uuid.uuid4())}, status)

    def refresh_refused(self) -> Response:
        return json_response({"status": "BAD_REFRESH_TOKEN", "message": "missing or invalid refresh token",
                              "error": "invalid_grant", "error_description": "missing or invalid refresh token",
                              "correlationId": str(uuid.uuid4())}, 400)

    def unauthorized(self) -> Response:
        return json_response({"status": "error", "message": "Authentication credentials not found.",
                              "correlationId": str(uuid.uuid4()), "category": "INVALID_AUTHENTICATION"}, 401)

    def rate_limited(self, retry_after: float) -> Response:
        # HubSpot sends no Retry-After: the 429 names its policy and the headers give the rolling window.
        return json_response(
            {"status": "error", "message": "You have reached your ten_secondly_rolling limit.",
             "errorType": "RATE_LIMIT", "correlationId": str(uuid.uuid4()), "policyName": "TEN_SECONDLY_ROLLING"},
            429, {"X-HubSpot-RateLimit-Interval-Milliseconds": str(int(retry_after * 1000)),
                  "X-HubSpot-RateLimit-Max": str(INTERVAL_MAX), "X-HubSpot-RateLimit-Remaining": "0"})

    def quota_headers(self, grant: Grant | None) -> dict[str, str]:
        self.calls = getattr(self, "calls", 0) + 1
        return {"X-HubSpot-RateLimit-Interval-Milliseconds": str(self.interval_ms),
                "X-HubSpot-RateLimit-Max": str(INTERVAL_MAX),
                "X-HubSpot-RateLimit-Remaining": str(max(INTERVAL_MAX - self.calls % INTERVAL_MAX, 0)),
                "X-HubSpot-RateLimit-Secondly": "11", "X-HubSpot-RateLimit-Secondly-Remaining": "10"}

    # --- token information and revocation -------------------------------------------------------------------------
    def access_token_info(self, request: Request, token: str, **_) -> Response:
        grant = self.authority.live_access(self.name, token)
        if grant is None:
            return json_response({"status": "error", "message": "The access token is expired or invalid",
                                  "correlationId": str(uuid.uuid4()), "category": "EXPIRED_AUTHENTICATION"}, 401)
        issued = self.authority.access[token]
        return json_response({"token": token, "user": grant.account["user"], "hub_domain": HUB_DOMAIN,
                              "scopes": grant.scope.split(), "hub_id": grant.account["hub_id"],
                              "app_id": 123456, "expires_in": int(issued.expires_at - time.time()),
                              "user_id": grant.account["user_id"], "token_type": "access"})

    def delete_refresh_token(self, request: Request, token: str, **_) -> Response:
        # Deletes the refresh token only; access tokens already issued keep working until they expire.
        issued = self.authority.refresh.get(token)
        if issued is None:
            return json_response({"status": "error", "message": "refresh token not found"}, 404)
        issued.expires_at = 0.0
        return Response(status=204)

    # --- CRM ------------------------------------------------------------------------------------------------------
    def account_details(self, request: Request, grant: Grant, **_) -> Response:
        return json_response({"portalId": grant.account["hub_id"], "accountType": "STANDARD",
                              "timeZone": "Pacific/Auckland", "companyCurrency": "NZD", "additionalCurrencies": [],
                              "utcOffset": "+12:00", "utcOffsetMilliseconds": 43200000, "uiDomain": "app.hubspot.com",
                              "dataHostingLocation": "na1"})

    def search_contacts(self, request: Request, grant: Grant, **_) -> Response:
        body = request.get_json(silent=True) or {}
        try:
            filters = [f for g in body.get("filterGroups") or [] for f in g.get("filters") or []]
            limit = min(int(body.get("limit", 10)), 200)
            offset = int(body.get("after") or 0)
        except (TypeError, ValueError, AttributeError):
            return _validation("Invalid input JSON")
        matches = [c for c in self.contacts.values() if all(_matches(c, f) for f in filters)]
        page = matches[offset:offset + limit]
        wanted = body.get("properties") or ["email", "firstname", "lastname"]
        result = {"total": len(matches), "results": [_project(c, wanted) for c in page]}
        if offset + limit < len(matches):
            result["paging"] = {"next": {"after": str(offset + limit)}}
        return json_response(result)

    def get_deal(self, request: Request, grant: Grant, deal_id: str, **_) -> Response:
        deal = self.deals.get(deal_id)
        if deal is None:
            return json_response({"status": "error", "message": "resource not found",
                                  "correlationId": str(uuid.uuid4()), "category": "OBJECT_NOT_FOUND"}, 404)
        wanted = [p for p in request.args.get("properties", "").split(",") if p] or \
            ["amount", "closedate", "dealname", "dealstage", "pipeline"]
        return json_response(_project(deal, wanted))

    def update_deal(self, request: Request, grant: Grant, deal_id: str, **_) -> Response:
        deal = self.deals.get(deal_id)
        properties = (request.get_json(silent=True) or {}).get("properties")
        if deal is None:
            return json_response({"status": "error", "message": "resource not found",
                                  "category": "OBJECT_NOT_FOUND"}, 404)
        if not isinstance(properties, dict):
            return _validation("properties is required")
        deal["properties"].update({k: str(v) for k, v in properties.items()})
        deal["properties"]["hs_lastmodifieddate"] = deal["updatedAt"] = _iso(time.time())
        return json_response(_project(deal, list(properties) + ["hs_lastmodifieddate"]))

    def associated_deals(self, request: Request, grant: Grant, contact_id: str, **_) -> Response:
        if contact_id not in self.contacts:
            return json_response({"status": "error", "message": "resource not found",
                                  "category": "OBJECT_NOT_FOUND"}, 404)
        results = [{"toObjectId": int(d), "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": 4,
                                                                  "label": None}]}
                   for d in self.contact_deals.get(contact_id, [])]
        return json_response({"results": results})

    def create_note(self, request: Request, grant: Grant, **_) -> Response:
        body = request.get_json(silent=True) or {}
        properties = body.get("properties") or {}
        if not properties.get("hs_timestamp"):
            return _validation("Property values were not valid: hs_timestamp is required")
        targets = {NOTE_TO_DEAL: self.deals, NOTE_TO_CONTACT: self.contacts}
        for association in body.get("associations") or []:
            type_ids = {t.get("associationTypeId") for t in association.get("types") or []}
            record = str((association.get("to") or {}).get("id"))
            if not type_ids or not all(t in targets and record in targets[t] for t in type_ids):
                return _validation(f"invalid association to {record}")
        note = self._store(self.notes, {k: str(v) for k, v in properties.items()})
        note["associations"] = body.get("associations") or []
        return json_response({k: v for k, v in note.items() if k != "associations"}, 201)


def _matches(record: dict, condition: dict) -> bool:
    value = record["properties"].get(condition.get("propertyName"))
    if condition.get("operator") == "EQ":
        return str(value or "").lower() == str(condition.get("value", "")).lower()
    return False


def _project(record: dict, properties: list[str]) -> dict:
    keep = set(properties) | {"hs_object_id", "createdate", "hs_lastmodifieddate"}
    return {**record, "properties": {k: v for k, v in record["properties"].items() if k in keep}}


def _validation(message: str) -> Response:
    return json_response({"status": "error", "message": message, "correlationId": str(uuid.uuid4()),
                          "category": "VALIDATION_ERROR"}, 400)
