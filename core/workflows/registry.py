"""Every code-defined workflow, by name: the one place a workflow module is registered.

A module declares NAME, DESCRIPTION, ROLES (role -> provider of the connection it binds), TRIGGER (the
provider and event types that start it, or None for a scheduled workflow), Mappings (a marshmallow schema of
its per-tenant settings), optionally `matches(setting, event_type, payload)`, and `run(ctx, data)`.
"""
from __future__ import annotations

from core.workflows import (
    echo,
    hubspot_deal_won_to_asana,
    revenova_invoice_sync,
    shopify_order_to_xero_invoice,
    xero_invoice_paid_to_hubspot,
)

WORKFLOWS = {module.NAME: module for module in (
    echo, xero_invoice_paid_to_hubspot, shopify_order_to_xero_invoice, hubspot_deal_won_to_asana,
    revenova_invoice_sync)}
