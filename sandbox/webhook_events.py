"""Events the simulated providers emit on their own: each changes the simulator's data the way the real system
would (an invoice is paid, a deal is won, an order is placed) and answers the webhook body the provider sends for it.

Invariant: the change is made before the body is built, so a subscriber's follow-up read finds it (Xero's
webhook only says an invoice changed; whoever receives it reads the invoice and must find it PAID).
"""
from __future__ import annotations

import itertools
import secrets
import string
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

from sandbox.asana import USER, WORKSPACES, Asana
from sandbox.hubspot import HUB_ID, HubSpot
from sandbox.provider import Provider
from sandbox.salesforce import EXTERNAL_ID, INVOICE, ORG_ID, Salesforce, sf_datetime
from sandbox.shopify import Shopify, new_order
from sandbox.xero import Organisation, Xero, xero_date

HUBSPOT_APP_ID = 123456  # the app id the simulated HubSpot reports for Zixly's app (access-token info)
_sequence = itertools.count(1)  # Xero's event sequence numbers
_hubspot_event_ids = itertools.count(int(time.time() * 1000))  # unique, and above any of an earlier run


class EventRefused(ValueError):
    """The event cannot happen as asked (an unknown account or record): nothing was changed."""


@dataclass(frozen=True)
class Emission:
    """A webhook body as the provider sends it, the signing options it needs, and what the event changed."""

    payload: dict | list
    account: str
    resource_id: str
    changed: dict
    options: dict = field(default_factory=dict)


def _utc(epoch: float, fmt: str = "%Y-%m-%dT%H:%M:%S") -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime(fmt)


# --- Xero ---------------------------------------------------------------------------------------------------------
def _xero_org(xero: Xero, account: str) -> Organisation:
    org = xero.organisations.get((account or "").lower())
    if org is None:
        raise EventRefused(f"Xero has no organisation {account!r}; known: {', '.join(xero.organisations)}")
    return org


def _unpaid_invoice(xero: Xero, org: Organisation, invoice_id: str | None) -> dict:
    if invoice_id:
        invoice = org.invoices.get(invoice_id.lower())
        if invoice is None:
            raise EventRefused(f"organisation {org.tenant_id} has no invoice {invoice_id!r}")
        return invoice
    unpaid = [i for i in org.invoices.values() if i["Type"] == "ACCREC" and i["Status"] == "AUTHORISED"]
    if unpaid:
        return min(unpaid, key=lambda i: i["InvoiceNumber"])
    # every demo invoice is paid already: the customer is billed again, so the story can be shown once more
    contact = next(iter(org.contacts.values()))
    return xero._new_invoice(org, {"Type": "ACCREC", "Contact": {"ContactID": contact["ContactID"]},
                                   "Reference": "PO-DEMO", "LineItems": [
                                       {"Description": "Consulting", "Quantity": 3, "UnitAmount": 100.0,
                                        "AccountCode": "200"}]}, status="AUTHORISED")


def _xero_body(org: Organisation, category: str, resource: str, resource_id: str, now: float) -> dict:
    sequence = next(_sequence)
    return {"events": [{
        "resourceUrl": f"https://api.xero.com/api.xro/2.0/{resource}/{resource_id}", "resourceId": resource_id,
        "eventDateUtc": _utc(now, "%Y-%m-%dT%H:%M:%S.") + f"{int(now * 1000) % 1000:03}",
        "eventType": "UPDATE", "eventCategory": category, "tenantId": org.tenant_id, "tenantType": "ORGANISATION"}],
        "firstEventSequence": sequence, "lastEventSequence": sequence,
        "entropy": "".join(secrets.choice(string.ascii_uppercase) for _ in range(20))}


def xero_invoice_paid(xero: Xero, *, account: str, resource_id: str | None = None) -> Emission:
    """An accounts-receivable invoice is paid in full (the oldest unpaid one unless `resource_id` names one)."""
    org = _xero_org(xero, account)
    invoice = _unpaid_invoice(xero, org, resource_id)
    now = time.time()
    invoice.update(Status="PAID", AmountPaid=invoice["Total"], AmountDue=0.0, FullyPaidOnDate=xero_date(now),
                   UpdatedDateUTC=xero_date(now))
    return Emission(_xero_body(org, "INVOICE", "Invoices", invoice["InvoiceID"], now), org.tenant_id,
                    invoice["InvoiceID"], {"invoice": invoice["InvoiceNumber"], "status": "PAID",
                                           "contact": invoice["Contact"]["Name"], "total": invoice["Total"]})


# --- HubSpot ------------------------------------------------------------------------------------------------------
def hubspot_deal_won(hubspot: HubSpot, *, account: str, resource_id: str | None = None) -> Emission:
    """A deal moves to `closedwon` (the first open deal unless `resource_id` names one)."""
    if str(account) != str(HUB_ID):
        raise EventRefused(f"HubSpot has no portal {account!r}; the simulated one is {HUB_ID}")
    if resource_id:
        deal = hubspot.deals.get(str(resource_id))
        if deal is None:
            raise EventRefused(f"HubSpot has no deal {resource_id!r}")
    else:
        open_deals = [d for d in hubspot.deals.values() if d["properties"].get("dealstage") != "closedwon"]
        if not open_deals:
            raise EventRefused("every HubSpot deal is won already; name one with resource_id")
        deal = min(open_deals, key=lambda d: int(d["id"]))
    now = time.time()
    deal["properties"].update(dealstage="closedwon", hs_lastmodifieddate=_utc(now, "%Y-%m-%dT%H:%M:%S.000Z"))
    deal["updatedAt"] = deal["properties"]["hs_lastmodifieddate"]
    payload = [{"eventId": next(_hubspot_event_ids), "subscriptionId": 2101,
                "portalId": HUB_ID, "appId": HUBSPOT_APP_ID, "occurredAt": int(now * 1000),
                "subscriptionType": "deal.propertyChange", "attemptNumber": 0, "objectId": int(deal["id"]),
                "propertyName": "dealstage", "propertyValue": "closedwon", "changeSource": "CRM_UI",
                "sourceId": "userId:4242"}]
    return Emission(payload, str(HUB_ID), deal["id"], {"deal": deal["properties"].get("dealname"),
                                                       "dealstage": "closedwon"})


# --- Shopify ------------------------------------------------------------------------------------------------------
def shopify_order_created(shopify: Shopify, *, account: str, resource_id: str | None = None) -> Emission:
    """A customer places an order in the shop (a new order, like the seeded one, dated now)."""
    if account not in shopify.shops:
        raise EventRefused(f"Shopify has no shop {account!r}; known: {', '.join(shopify.shops)}")
    orders = shopify.orders[account]
    order_id = max(orders) + 1
    stamp = _utc(time.time()) + "Z"
    order = {**new_order(order_id), "name": f"#{1000 + len(orders) + 1}", "order_number": 1000 + len(orders) + 1,
             "created_at": stamp, "updated_at": stamp}
    orders[order_id] = order
    return Emission(order, account, str(order_id), {"order": order["name"], "total": order["total_price"]},
                    options={"shop": account, "topic": "orders/create"})


# --- Asana --------------------------------------------------------------------------------------------------------
def asana_task_completed(asana: Asana, *, account: str, resource_id: str | None = None) -> Emission:
    """A task of the workspace is marked complete (the oldest open one, or a new onboarding task if none)."""
    if account not in {w["gid"] for w in WORKSPACES}:
        raise EventRefused(f"Asana has no workspace {account!r}; known: {', '.join(w['gid'] for w in WORKSPACES)}")
    if resource_id:
        task = asana.tasks.get(str(resource_id))
        if task is None or task["workspace"]["gid"] != account:
            raise EventRefused(f"workspace {account} has no task {resource_id!r}")
    else:
        open_tasks = [t for t in asana.tasks.values() if t["workspace"]["gid"] == account and not t["completed"]]
        task = min(open_tasks, key=lambda t: int(t["gid"])) if open_tasks else asana.add_task(
            "Send the welcome pack", account)
    now = time.time()
    task.update(completed=True, completed_at=_utc(now, "%Y-%m-%dT%H:%M:%S.000Z"))
    payload = {"events": [{"user": {"gid": USER["gid"], "resource_type": "user"},
                           "created_at": task["completed_at"], "action": "changed",
                           "resource": {"gid": task["gid"], "resource_type": "task",
                                        "resource_subtype": "default_task"},
                           "parent": None, "change": {"field": "completed", "action": "changed"}}]}
    return Emission(payload, account, task["gid"], {"task": task["name"], "completed": True})


# --- Salesforce (a Revenova org) ------------------------------------------------------------------------------------
def salesforce_invoice_paid(salesforce: Salesforce, *, account: str, resource_id: str | None = None) -> Emission:
    """A Revenova customer invoice is marked Paid (the oldest open one unless `resource_id` names one); the org's
    outbound webhook announces it in the Standard Webhooks shape."""
    if account != ORG_ID:
        raise EventRefused(f"Salesforce has no org {account!r}; the simulated one is {ORG_ID}")
    invoices = salesforce.records[INVOICE]
    if resource_id:
        record = invoices.get(str(resource_id))
        if record is None:
            raise EventRefused(f"the org has no {INVOICE} {resource_id!r}")
    else:
        unpaid = [r for r in invoices.values() if r["rtms__Status__c"] != "Paid"]
        if not unpaid:
            raise EventRefused("every invoice of the org is paid already; name one with resource_id")
        record = min(unpaid, key=lambda r: r["Name"])
    stamp = sf_datetime(datetime.now(timezone.utc))
    record.update(rtms__Status__c="Paid", LastModifiedDate=stamp, SystemModstamp=stamp)
    payload = {"type": "invoice.paid", "timestamp": _utc(time.time()) + "Z",
               "data": {k: record[k] for k in ("Id", "Name", "rtms__Total__c", "rtms__Status__c", EXTERNAL_ID)}}
    return Emission(payload, ORG_ID, record["Id"], {"invoice": record["Name"], "status": "Paid"},
                    options={"msg_id": f"msg_{secrets.token_hex(12)}"})


Emitter = Callable[..., Emission]
EVENTS: dict[str, dict[str, Emitter]] = {
    "xero": {"invoice.paid": xero_invoice_paid},
    "hubspot": {"deal.won": hubspot_deal_won},
    "shopify": {"orders/create": shopify_order_created},
    "asana": {"task.completed": asana_task_completed},
    "salesforce": {"invoice.paid": salesforce_invoice_paid},
}


def emit(provider: Provider, event: str, *, account: str, resource_id: str | None = None) -> Emission:
    """Make `event` happen at `provider` and answer the webhook it sends; EventRefused changes nothing."""
    emitter = EVENTS.get(provider.name, {}).get(event)
    if emitter is None:
        known = ", ".join(EVENTS.get(provider.name, {})) or "none"
        raise EventRefused(f"the {provider.name} simulator emits no {event!r} event (it emits: {known})")
    return emitter(provider, account=account, resource_id=resource_id)
