"""The demo customers every simulator knows, so the seeded data line up across providers: each is a Xero contact
(billed by the seeded invoices) and a HubSpot contact with an open deal, under the same email address."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Customer:
    name: str
    email: str
    deal_id: str
    deal_amount: str


CUSTOMERS = (
    Customer("Ridgeway University", "accounts1@example.com", "9002", "1200"),
    Customer("City Agency", "accounts2@example.com", "9003", "800"),
    Customer("Marine Systems", "accounts3@example.com", "9004", "2500"),
)
