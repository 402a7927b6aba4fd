"""Salesforce (Revenova) outbound calls, which arrive signed with the Standard Webhooks scheme."""
from __future__ import annotations

from connectors.standard_webhooks import StandardWebhooksScheme


class SalesforceScheme(StandardWebhooksScheme):
    provider = "salesforce"
