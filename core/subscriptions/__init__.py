"""Event subscriptions: tenants' endpoints (service), Standard Webhooks signing (signing), delivery with retries,
auto-disable and its alert (delivery, schedule, slots), the sweeper for stranded messages (sweeper)."""
