"""Xero: identity server (Basic client auth, rotating refresh tokens), /connections, and the Accounting API."""
from __future__ import annotations

import json
import re
import time
import uuid
from datetime import datetime, timezone

from werkzeug.wrappers import Request, Response

from sandbox.authority import App, Grant
from sandbox.demo import CUSTOMERS
from sandbox.provider import Provider, json_response, route

ORGANISATIONS = (
    {"tenantId": "6f5b0a1c-3c2e-4f4e-9d1a-0a1b2c3d4e5f", "name": "Demo Company (NZ)", "currency": "NZD"},
    {"tenantId": "b2c7e9d4-8a61-4f0b-a5c3-7d2e9f1a6b80", "name": "Zixly Test Ltd", "currency": "GBP"},
)
_API = r"api\.xero\.com/api\.xro/2\.0"


def xero_date(epoch: float) -> str:
    return f"/Date({int(epoch * 1000)}+0000)/"


def _epoch(xero: str) -> float:
    return int(xero[6:xero.index("+")]) / 1000


class Organisation:
    def __init__(self, tenant_id: str, name: str, currency: str):
        self.tenant_id, self.name, self.currency = tenant_id, name, currency
        self.contacts: dict[str, dict] = {}
        self.invoices: dict[str, dict] = {}
        self.idempotent: dict[str, tuple[int, dict]] = {}
        self.calls_by_minute: dict[int, int] = {}
        self.calls_today = 0


class Xero(Provider):
    name = "xero"
    access_ttl = 1800.0        # 30 minutes
    rotate_refresh = True      # every refresh returns a new refresh token...
    refresh_grace = 1800.0     # ...and the previous one still works for 30 minutes
    client_auth = "basic"
    routes = (
        route("GET", r"login\.xero\.com/identity/connect/authorize", "authorize", api=False),
        route("POST", r"identity\.xero\.com/connect/token", "token", api=False),
        route("POST", r"identity\.xero\.com/connect/revocation", "revoke", api=False),
        route("GET", r"api\.xero\.com/connections", "connections"),
        route("DELETE", r"api\.xero\.com/connections/(?P<connection_id>[^/]+)", "disconnect"),
        route("GET", _API + r"/Organisation", "organisation"),
        route("GET", _API + r"/Invoices", "list_invoices"),
        route("GET", _API + r"/Invoices/(?P<invoice_id>[^/]+)", "get_invoice"),
        route("PUT", _API + r"/Invoices", "create_invoices"),
        route("POST", _API + r"/Invoices", "create_invoices"),
        route("GET", _API + r"/Contacts", "list_contacts"),
        route("GET", _API + r"/Contacts/(?P<contact_id>[^/]+)", "get_contact"),
        route("PUT", _API + r"/Contacts", "create_contacts"),
        route("POST", _API + r"/Contacts", "create_contacts"),
    )

    def seed(self) -> None:
        self.organisations = {o["tenantId"]: Organisation(o["tenantId"], o["name"], o["currency"])
                              for o in ORGANISATIONS}
        self.disconnected: set[tuple[str, str]] = set()   # (grant id, tenant id)
        base = time.time() - 10 * 86400
        for org in self.organisations.values():
            for n, customer in enumerate(CUSTOMERS, start=1):
                contact = self._new_contact(org, {"Name": customer.name, "EmailAddress": customer.email})
                contact["UpdatedDateUTC"] = xero_date(base + n * 3600)
            for n in range(1, 6):
                contact = list(org.contacts.values())[n % 3]
                invoice = self._new_invoice(org, {
                    "Type": "ACCREC", "Contact": {"ContactID": contact["ContactID"]}, "Reference": f"PO-{n:03}",
                    "LineItems": [{"Description": "Consulting", "Quantity": n, "UnitAmount": 100.0,
                                   "AccountCode": "200"}]}, status="PAID" if n == 1 else "AUTHORISED")
                invoice["UpdatedDateUTC"] = xero_date(base + n * 86400)

    # --- OAuth shapes -------------------------------------------------------------------------------------------
    def consent(self, request: Request, host: str, app: App) -> dict:
        # The demo user administers every organisation and ticks them all on the consent screen.
        return {"tenant_ids": list(self.organisations), "auth_event_id": str(uuid.uuid4())}

    def token_body(self, grant: Grant, access: str, refresh: str | None, app: App, refreshing: bool) -> dict:
        body = {"access_token": access, "expires_in": int(self.access_ttl), "token_type": "Bearer",
                "scope": grant.scope}
        if refresh:
            body["refresh_token"] = refresh
        return body

    def unauthorized(self) -> Response:
        return _problem(401, "Unauthorized", "AuthenticationUnsuccessful")

    def rate_limited(self, retry_after: float) -> Response:
        return Response("Rate limit exceeded", status=429, headers={
            "Retry-After": f"{retry_after:g}", "X-Rate-Limit-Problem": "minute", "X-MinLimit-Remaining": "0",
            "X-DayLimit-Remaining": "4000", "X-AppMinLimit-Remaining": "9000"})

    def quota_headers(self, grant: Grant | None) -> dict[str, str]:
        return getattr(self, "_last_quota", {})

    # --- connections --------------------------------------------------------------------------------------------
    def connections(self, request: Request, grant: Grant, **_) -> Response:
        return json_response([
            {"id": _connection_id(grant, tenant_id), "authEventId": grant.account["auth_event_id"],
             "tenantId": tenant_id, "tenantType": "ORGANISATION",
             "tenantName": self.organisations[tenant_id].name,
             "createdDateUtc": "2024-01-01T00:00:00.0000000", "updatedDateUtc": "2024-01-01T00:00:00.0000000"}
            for tenant_id in grant.account["tenant_ids"] if (grant.id, tenant_id) not in self.disconnected])

    def disconnect(self, request: Request, grant: Grant, connection_id: str, **_) -> Response:
        for tenant_id in grant.account["tenant_ids"]:
            if _connection_id(grant, tenant_id) == connection_id:
                self.disconnected.add((grant.id, tenant_id))
                return Response(status=204)
        return Response("The resource you're looking for cannot be found", status=404)

    # --- Accounting API -----------------------------------------------------------------------------------------
    def organisation(self, request: Request, grant: Grant, **_) -> Response:
        org = self._org(request, grant)
        if isinstance(org, Response):
            return org
        return self._envelope("Organisations", [{"OrganisationID": org.tenant_id, "Name": org.name,
                                                 "BaseCurrency": org.currency, "OrganisationType": "COMPANY",
                                                 "IsDemoCompany": True}])

    def get_invoice(self, request: Request, grant: Grant, invoice_id: str, **_) -> Response:
        org = self._org(request, grant)
        if isinstance(org, Response):
            return org
        invoice = org.invoices.get(invoice_id.lower()) or next(
            (i for i in org.invoices.values() if i["InvoiceNumber"] == invoice_id), None)
        if invoice is None:
            return Response("The resource you're looking for cannot be found", status=404)
        return self._envelope("Invoices", [invoice])

    def list_invoices(self, request: Request, grant: Grant, **_) -> Response:
        return self._list(request, grant, "Invoices", lambda org: org.invoices)

    def list_contacts(self, request: Request, grant: Grant, **_) -> Response:
        where = request.args.get("where", "")
        match = re.fullmatch(r'\s*EmailAddress\s*==\s*"([^"]*)"\s*', where) if where else None
        if where and match is None:
            return Response("The where filter is not supported by this simulator", status=400)
        wanted = match.group(1).lower() if match else None
        return self._list(request, grant, "Contacts", lambda org: {
            k: c for k, c in org.contacts.items() if wanted is None or c.get("EmailAddress", "").lower() == wanted})

    def get_contact(self, request: Request, grant: Grant, contact_id: str, **_) -> Response:
        org = self._org(request, grant)
        if isinstance(org, Response):
            return org
        contact = org.contacts.get(contact_id.lower())
        if contact is None:
            return Response("The resource you're looking for cannot be found", status=404)
        return self._envelope("Contacts", [contact])

    def create_contacts(self, request: Request, grant: Grant, **_) -> Response:
        return self._create(request, grant, "Contacts", self._new_contact)

    def create_invoices(self, request: Request, grant: Grant, **_) -> Response:
        return self._create(request, grant, "Invoices", self._new_invoice)

    def _list(self, request: Request, grant: Grant, key: str, items) -> Response:
        org = self._org(request, grant)
        if isinstance(org, Response):
            return org
        since = _parse_since(request.headers.get("If-Modified-Since"))
        found = sorted((i for i in items(org).values() if since is None or _epoch(i["UpdatedDateUTC"]) > since),
                       key=lambda i: _epoch(i["UpdatedDateUTC"]))
        if "page" not in request.args:
            return self._envelope(key, found)
        page = max(int(request.args.get("page", "1")), 1)
        size = min(max(int(request.args.get("pageSize", "100")), 1), 1000)
        chunk = found[(page - 1) * size: page * size]
        body = json.loads(self._envelope(key, chunk).get_data())
        body["pagination"] = {"page": page, "pageSize": size, "pageCount": max(-(-len(found) // size), 1),
                              "itemCount": len(found)}
        return json_response(body)

    def _create(self, request: Request, grant: Grant, key: str, build) -> Response:
        org = self._org(request, grant)
        if isinstance(org, Response):
            return org
        idempotency_key = request.headers.get("Idempotency-Key")
        if idempotency_key and idempotency_key in org.idempotent:
            status, body = org.idempotent[idempotency_key]
            return json_response(body, status)
        payload = request.get_json(silent=True) or {}
        items = payload.get(key) if isinstance(payload, dict) else None
        if not isinstance(items, list) or not items:
            return _validation(f"{key} is required")
        created = []
        for item in items:
            made = build(org, item)
            if isinstance(made, str):
                return _validation(made)
            created.append(made)
        body = json.loads(self._envelope(key, created).get_data())
        if idempotency_key:
            org.idempotent[idempotency_key] = (200, body)
        return json_response(body)

    def _new_contact(self, org: Organisation, data: dict) -> dict | str:
        name = str(data.get("Name") or "").strip()
        if not name:
            return "The contact name must be specified."
        if any(c["Name"].lower() == name.lower() for c in org.contacts.values()):
            return (f"The contact name {name} is already assigned to another contact. The contact name must be "
                    "unique across all active contacts.")
        contact = {"ContactID": str(uuid.uuid4()), "ContactStatus": "ACTIVE", "Name": name,
                   "EmailAddress": data.get("EmailAddress", ""), "UpdatedDateUTC": xero_date(time.time())}
        org.contacts[contact["ContactID"]] = contact
        return contact

    def _new_invoice(self, org: Organisation, data: dict, status: str | None = None) -> dict | str:
        ref = data.get("Contact") or {}
        contact = org.contacts.get(str(ref.get("ContactID", "")).lower()) or next(
            (c for c in org.contacts.values() if ref.get("Name") and c["Name"] == ref.get("Name")), None)
        if data.get("Type") not in ("ACCREC", "ACCPAY"):
            return "Invoice Type must be specified (ACCREC or ACCPAY)."
        if contact is None:
            return "A Contact must be specified for this type of transaction"
        lines = data.get("LineItems") or []
        if not lines:
            return "At least one line item must be specified."
        total = round(sum(float(li.get("Quantity", 1)) * float(li.get("UnitAmount", 0)) for li in lines), 2)
        now = time.time()
        paid = status == "PAID"
        invoice = {
            "Type": data["Type"], "InvoiceID": str(uuid.uuid4()), "InvoiceNumber": f"INV-{len(org.invoices) + 1:04}",
            "Reference": data.get("Reference", ""), "Contact": {"ContactID": contact["ContactID"],
                                                                 "Name": contact["Name"]},
            "Date": xero_date(now), "DueDate": xero_date(now + 14 * 86400), "Status": status or data.get(
                "Status", "DRAFT"), "LineAmountTypes": "Exclusive", "LineItems": lines, "SubTotal": total,
            "TotalTax": 0.0, "Total": total, "AmountDue": 0.0 if paid else total, "AmountPaid": total if paid else 0.0,
            "CurrencyCode": org.currency, "UpdatedDateUTC": xero_date(now)}
        org.invoices[invoice["InvoiceID"]] = invoice
        return invoice

    def _org(self, request: Request, grant: Grant) -> Organisation | Response:
        tenant_id = (request.headers.get("xero-tenant-id") or "").lower()
        if (tenant_id not in grant.account["tenant_ids"] or (grant.id, tenant_id) in self.disconnected
                or tenant_id not in self.organisations):
            return _problem(403, "Forbidden", "AuthorizationUnsuccessful")
        org = self.organisations[tenant_id]
        minute = int(time.time() // 60)
        org.calls_by_minute[minute] = org.calls_by_minute.get(minute, 0) + 1
        org.calls_today += 1
        self._last_quota = {"X-DayLimit-Remaining": str(5000 - org.calls_today),
                            "X-MinLimit-Remaining": str(60 - org.calls_by_minute[minute]),
                            "X-AppMinLimit-Remaining": "9999"}
        return org

    def _envelope(self, key: str, items: list) -> Response:
        return json_response({"Id": str(uuid.uuid4()), "Status": "OK", "ProviderName": "Zixly",
                              "DateTimeUTC": xero_date(time.time()), key: items})


def _connection_id(grant: Grant, tenant_id: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{grant.id}/{tenant_id}"))


def _problem(status: int, title: str, detail: str) -> Response:
    return json_response({"Type": None, "Title": title, "Status": status, "Detail": detail,
                          "Instance": str(uuid.uuid4()), "Extensions": {}}, status)


def _validation(message: str) -> Response:
    return json_response({"ErrorNumber": 10, "Type": "ValidationException",
                          "Message": "A validation exception occurred",
                          "Elements": [{"ValidationErrors": [{"Message": message}]}]}, 400)


def _parse_since(value: str | None) -> float | None:
    if not value:
        return None
    for fmt in ("%Y-%m-%dT%H:%M:%S", "%a, %d %b %Y %H:%M:%S GMT"):
        try:
            return datetime.strptime(value.strip(), fmt).replace(tzinfo=timezone.utc).timestamp()
        except ValueError:
            continue
    return None
