"""`revenova-invoice-sync` (polling): on its schedule, read the Revenova (Salesforce) invoices modified since
the connection's cursor and feed each in as an inbound event.

The events and the new cursor commit in ONE tenant transaction: a crash between the fetch and the commit
leaves the cursor where it was, so the next run fetches the same records again, and the inbox's
de-duplication (event id = record id + modification stamp) stores each change once.
"""
from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import marshmallow as ma

from core.platform.errors import PermanentError
from core.platform.validation import FullMatch

NAME = "revenova-invoice-sync"
DESCRIPTION = "Polls Revenova (Salesforce) invoices changed since the last run and records them as events."
ROLES = {"source": "salesforce"}
TRIGGER = None  # scheduled
DEFAULT_SCHEDULE = 900
SOBJECT = "rtms__CustomerInvoice__c"
FIELDS = ("Id", "Name", "rtms__Total__c", "rtms__Status__c", "LastModifiedDate")
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)\Z")


class Mappings(ma.Schema):
    sobject = ma.fields.String(load_default=SOBJECT, validate=FullMatch(r"^\w{1,80}$"))
    initial_days = ma.fields.Integer(load_default=30, validate=ma.validate.Range(min=0, max=3650))


def run(ctx, data: dict) -> dict:
    sobject = ctx.mappings.get("sobject", SOBJECT)
    cursor = ctx.poll_cursor("source") or (
        datetime.now(UTC) - timedelta(days=int(ctx.mappings.get("initial_days", 30)))).strftime(
        "%Y-%m-%dT%H:%M:%S.000+0000")
    if not STAMP.match(cursor):
        raise PermanentError(f"stored cursor {cursor!r} is not a Salesforce datetime")
    soql = (f"SELECT {', '.join(FIELDS)} FROM {sobject} WHERE LastModifiedDate > {cursor} "
            f"ORDER BY LastModifiedDate ASC")
    records = list(ctx.call("source", "query", soql))
    for record in records:
        ctx.related("salesforce", sobject, record["Id"], "read", modified=record.get("LastModifiedDate"))
    stored = ctx.record_polled("source", provider="salesforce", event_type=f"{sobject}.changed", records=records,
                               cursor_of=lambda r: r["LastModifiedDate"], previous=cursor)
    return {"fetched": len(records), "new_events": stored["new"], "cursor": stored["cursor"]}
