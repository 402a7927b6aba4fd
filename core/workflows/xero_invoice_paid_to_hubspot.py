"""`xero-invoice-paid-to-hubspot`: a Xero invoice becomes PAID → find the HubSpot contact by the invoice
contact's email → move the contact's deal to the configured stage → add a note with number and amount.

Xero's webhook only says an invoice changed; the invoice is read to see whether it is PAID (anything else
finishes the job as `skipped`). Reads go straight to the providers; the two writes leave through HubSpot's
ordered outbound queue, keyed by the deal, so two payments for one deal apply in order.
"""
from __future__ import annotations

import marshmallow as ma

from core.platform.errors import PermanentError

NAME = "xero-invoice-paid-to-hubspot"
DESCRIPTION = "A paid Xero invoice moves the customer's HubSpot deal to a stage and adds a note."
ROLES = {"source": "xero", "target": "hubspot"}
TRIGGER = {"provider": "xero", "event_types": {"UPDATE:INVOICE", "CREATE:INVOICE"}}


class Mappings(ma.Schema):
    deal_stage = ma.fields.String(load_default="closedwon", validate=ma.validate.Length(min=1, max=100))
    note_template = ma.fields.String(load_default="Xero invoice {number} paid: {currency} {amount}",
                                     validate=ma.validate.Length(min=1, max=2000))


def run(ctx, data: dict) -> dict:
    event = data.get("event") or {}
    invoice_id = event.get("resourceId") or data.get("invoice_id")
    if not invoice_id:
        raise PermanentError("the event names no invoice")
    invoice = ctx.step("read-invoice", lambda: ctx.call("source", "get_invoice", str(invoice_id)))
    ctx.related("xero", "invoice", invoice.get("InvoiceID", invoice_id), "read", status=invoice.get("Status"))
    if invoice.get("Status") != "PAID":
        return {"skipped": f"invoice is {invoice.get('Status')}, not PAID"}
    contact_ref = (invoice.get("Contact") or {}).get("ContactID")
    contact = ctx.step("read-contact", lambda: ctx.call("source", "get_contact", contact_ref))
    email = (contact.get("EmailAddress") or "").strip()
    if not email:
        raise PermanentError(f"Xero contact {contact_ref} has no email address to find in HubSpot")

    def find_person():
        found = list(ctx.call("target", "search_contacts_by_email", email))
        if not found:
            raise PermanentError(f"no HubSpot contact has the email {email}")
        deals = ctx.call("target", "list_associated_deals", found[0]["id"])
        return {"contact_id": found[0]["id"], "deal_id": deals[0] if deals else None}

    person = ctx.step("find-hubspot-contact", find_person)
    ctx.related("hubspot", "contact", person["contact_id"], "read", email=email)
    stage = ctx.mappings.get("deal_stage", "closedwon")
    if person["deal_id"]:
        ctx.deliver("move-deal", "target", record_key=f"deal:{person['deal_id']}", operation="update_deal",
                    args={"deal_id": person["deal_id"], "properties": {"dealstage": stage}})
        ctx.related("hubspot", "deal", person["deal_id"], "updated", dealstage=stage)
    template = ctx.mappings.get("note_template", "Xero invoice {number} paid: {currency} {amount}")
    body = template.format(number=invoice.get("InvoiceNumber", invoice_id), amount=invoice.get("Total"),
                           currency=invoice.get("CurrencyCode", ""))
    note = ctx.deliver("add-note", "target", record_key=f"deal:{person['deal_id'] or person['contact_id']}",
                       operation="add_note", args={"body": body, "deal_id": person["deal_id"],
                                                   "contact_id": person["contact_id"]})
    ctx.related("hubspot", "note", (note or {}).get("id", "?"), "created")
    return {"invoice": invoice.get("InvoiceNumber"), "contact": person["contact_id"], "deal": person["deal_id"],
            "stage": stage if person["deal_id"] else None, "note": (note or {}).get("id")}
