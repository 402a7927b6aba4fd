"""`shopify-order-to-xero-invoice`: a Shopify order is created → find the Xero contact by the customer's
email (or create it) → create an invoice with the order's lines.

The writes go through Xero's ordered outbound queue keyed by the order, with a deterministic idempotency
key, so a redelivered webhook or a retried job never makes a second invoice.
"""
from __future__ import annotations

import marshmallow as ma

from core.platform.errors import PermanentError

NAME = "shopify-order-to-xero-invoice"
DESCRIPTION = "A new Shopify order becomes a Xero sales invoice for the customer (created if new)."
ROLES = {"source": "shopify", "target": "xero"}
TRIGGER = {"provider": "shopify", "event_types": {"orders/create"}}


class Mappings(ma.Schema):
    account_code = ma.fields.String(load_default="200", validate=ma.validate.Length(min=1, max=10))
    invoice_status = ma.fields.String(load_default="AUTHORISED", validate=ma.validate.OneOf(["DRAFT", "AUTHORISED"]))


def run(ctx, data: dict) -> dict:
    event = data.get("event") or {}
    order_id = event.get("id") or data.get("order_id")
    if not order_id:
        raise PermanentError("the event names no order")
    order = ctx.step("read-order", lambda: ctx.call("source", "get_order", order_id))
    ctx.related("shopify", "order", order.get("id", order_id), "read", name=order.get("name"))
    customer = order.get("customer") or {}
    email = (order.get("email") or customer.get("email") or "").strip()
    if not email:
        raise PermanentError(f"Shopify order {order_id} has no customer email")
    name = " ".join(filter(None, (customer.get("first_name"), customer.get("last_name")))) or email
    found = ctx.step("find-xero-contact", lambda: [c["ContactID"] for c in
                                                   ctx.call("target", "find_contacts_by_email", email)])
    if found:
        contact_id = found[0]
        ctx.related("xero", "contact", contact_id, "read", email=email)
    else:
        created = ctx.deliver("create-contact", "target", record_key=f"contact:{email.lower()}",
                              operation="create_contact",
                              args={"contact": {"Name": name, "EmailAddress": email},
                                    "idempotency_key": f"{ctx.job_id}-contact"})
        contact_id = created["ContactID"]
        ctx.related("xero", "contact", contact_id, "created", email=email)
    lines = [{"Description": item.get("title") or item.get("name") or "Item",
              "Quantity": item.get("quantity", 1), "UnitAmount": float(item.get("price") or 0),
              "AccountCode": ctx.mappings.get("account_code", "200")} for item in order.get("line_items") or []]
    if not lines:
        raise PermanentError(f"Shopify order {order_id} has no lines")
    invoice = ctx.deliver("create-invoice", "target", record_key=f"order:{order.get('id', order_id)}",
                          operation="create_invoice",
                          args={"invoice": {"Type": "ACCREC", "Contact": {"ContactID": contact_id},
                                            "Reference": f"Shopify {order.get('name', order_id)}",
                                            "Status": ctx.mappings.get("invoice_status", "AUTHORISED"),
                                            "LineItems": lines},
                                "idempotency_key": f"{ctx.job_id}-invoice"})
    ctx.related("xero", "invoice", invoice.get("InvoiceID"), "created", number=invoice.get("InvoiceNumber"))
    return {"order": order.get("name"), "contact": contact_id, "invoice": invoice.get("InvoiceNumber")}
