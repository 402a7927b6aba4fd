"""The API operations workflows use, with paging, against the simulators' documented request shapes."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from connectors.errors import InvalidOptions, NotFound, Permanent
from sandbox.asana import PROJECT
from sandbox.salesforce import EXTERNAL_ID, INVOICE


def test_xero_lists_invoices_modified_since_page_by_page(sim, connected):
    xero = connected("xero")
    xero.connector.page_size = 2
    invoices = list(xero.connector.list_invoices_modified_since(xero.ctx, datetime(2000, 1, 1)))
    assert len(invoices) == 5
    pages = sim.calls("xero", "/api.xro/2.0/Invoices")
    assert [c.query["page"] for c in pages] == ["1", "2", "3"]
    assert {c.headers["If-Modified-Since"] for c in pages} == {"2000-01-01T00:00:00"}
    assert {c.headers["Xero-Tenant-Id"] for c in pages} == {xero.ctx.account_id}


def test_xero_if_modified_since_filters_and_is_sent_in_utc(sim, connected):
    xero = connected("xero")
    everything = list(xero.connector.list_invoices_modified_since(xero.ctx, datetime(2000, 1, 1)))
    newest = max(everything, key=lambda i: i["UpdatedDateUTC"])
    stamp = int(newest["UpdatedDateUTC"][6:-7]) / 1000
    auckland = timezone(timedelta(hours=13))
    since = datetime.fromtimestamp(stamp - 1, auckland)
    found = list(xero.connector.list_invoices_modified_since(xero.ctx, since))
    assert [i["InvoiceID"] for i in found] == [newest["InvoiceID"]]
    sent = sim.calls("xero", "/api.xro/2.0/Invoices")[-1].headers["If-Modified-Since"]
    assert sent == datetime.fromtimestamp(stamp - 1, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


def test_xero_creates_a_contact_then_an_invoice_for_it_once_per_idempotency_key(sim, connected):
    xero = connected("xero")
    contact = xero.connector.create_contact(xero.ctx, {"Name": "Fresh Customer Ltd"}, idempotency_key="c-1")
    invoice = {"Type": "ACCREC", "Contact": {"ContactID": contact["ContactID"]},
               "LineItems": [{"Description": "Setup", "Quantity": 2, "UnitAmount": 50}]}
    first = xero.connector.create_invoice(xero.ctx, invoice, idempotency_key="inv-1")
    second = xero.connector.create_invoice(xero.ctx, invoice, idempotency_key="inv-1")
    assert first["InvoiceID"] == second["InvoiceID"] and first["Total"] == 100.0
    puts = sim.calls("xero", "/api.xro/2.0/Invoices")
    assert [c.method for c in puts] == ["PUT", "PUT"]
    assert json.loads(puts[0].body) == {"Invoices": [invoice]}
    org = sim.provider("xero").organisations[xero.ctx.account_id]
    assert sum(1 for i in org.invoices.values() if i["Contact"]["ContactID"] == contact["ContactID"]) == 1
    assert xero.connector.get_invoice(xero.ctx, first["InvoiceID"])["Status"] == "DRAFT"


def test_xero_validation_error_is_permanent_with_xeros_message(connected):
    xero = connected("xero")
    with pytest.raises(Permanent) as refused:
        xero.connector.create_contact(xero.ctx, {"Name": "Ridgeway University"})
    assert refused.value.status == 400 and "already assigned" in refused.value.detail


def test_xero_unknown_invoice_is_not_found(connected):
    xero = connected("xero")
    with pytest.raises(NotFound):
        xero.connector.get_invoice(xero.ctx, "00000000-0000-0000-0000-000000000000")


def test_xero_calls_need_an_organisation(connected):
    xero = connected("xero")
    xero.ctx.account_id = None
    with pytest.raises(InvalidOptions):
        xero.connector.test(xero.ctx)


def test_hubspot_searches_contacts_by_email_across_pages(sim, connected):
    hubspot = connected("hubspot")
    hubspot.connector.search_page_size = 2
    found = list(hubspot.connector.search_contacts_by_email(hubspot.ctx, "Shared@example.com"))
    assert sorted(c["properties"]["firstname"] for c in found) == ["Alex", "Kim", "Sam"]
    bodies = [json.loads(c.body) for c in sim.calls("hubspot", "/crm/v3/objects/contacts/search")]
    assert [b.get("after") for b in bodies] == [None, "2"]
    assert bodies[0]["filterGroups"] == [{"filters": [{"propertyName": "email", "operator": "EQ",
                                                       "value": "Shared@example.com"}]}]
    assert list(hubspot.connector.search_contacts_by_email(hubspot.ctx, "nobody@example.com")) == []


def test_hubspot_updates_a_deal_and_notes_it_on_the_deal_and_contact(sim, connected):
    hubspot = connected("hubspot")
    updated = hubspot.connector.update_deal(hubspot.ctx, "9001", {"dealstage": "closedwon"})
    assert updated["properties"]["dealstage"] == "closedwon"
    assert hubspot.connector.get_deal(hubspot.ctx, "9001", ("dealstage",))["properties"]["dealstage"] == "closedwon"
    jane = next(hubspot.connector.search_contacts_by_email(hubspot.ctx, "jane@example.com"))
    note = hubspot.connector.add_note(hubspot.ctx, "Invoice INV-0001 paid in Xero", deal_id="9001",
                                      contact_id=jane["id"])
    stored = sim.provider("hubspot").notes[note["id"]]
    assert stored["properties"]["hs_note_body"] == "Invoice INV-0001 paid in Xero"
    assert {(a["to"]["id"], a["types"][0]["associationTypeId"]) for a in stored["associations"]} == \
        {("9001", 214), (jane["id"], 202)}


def test_hubspot_note_to_a_missing_deal_is_permanent(connected):
    hubspot = connected("hubspot")
    with pytest.raises(Permanent):
        hubspot.connector.add_note(hubspot.ctx, "x", deal_id="424242")


def test_shopify_gets_an_order_with_the_shopify_token_header(sim, connected):
    shopify = connected("shopify")
    order = shopify.connector.get_order(shopify.ctx, 450789469)
    assert order["total_price"] == "598.94"
    call = sim.calls("shopify", "zixly-demo.myshopify.com/admin/api/2025-10/orders/")[-1]
    assert call.headers["X-Shopify-Access-Token"] == shopify.tokens.access_token
    assert "Authorization" not in call.headers
    with pytest.raises(NotFound):
        shopify.connector.get_order(shopify.ctx, 1)


def test_asana_creates_a_task_in_a_project(sim, connected):
    asana = connected("asana")
    task = asana.connector.create_task(asana.ctx, name="Chase invoice", notes="From Zixly",
                                       projects=[PROJECT["gid"]])
    assert task["projects"][0]["gid"] == PROJECT["gid"] and task["notes"] == "From Zixly"
    body = json.loads(sim.calls("asana", "/api/1.0/tasks")[-1].body)
    assert body == {"data": {"name": "Chase invoice", "notes": "From Zixly", "projects": [PROJECT["gid"]]}}
    in_workspace = asana.connector.create_task(asana.ctx, name="No project")
    assert in_workspace["workspace"]["gid"] == asana.ctx.account_id


def test_salesforce_query_follows_next_records_url(sim, connected):
    salesforce = connected("salesforce")
    sim.provider("salesforce").query_batch_size = 2
    since = (datetime.now(timezone.utc) - timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    soql = f"SELECT Id, Name, LastModifiedDate FROM {INVOICE} WHERE LastModifiedDate > {since} ORDER BY Name"
    rows = list(salesforce.connector.query(salesforce.ctx, soql))
    assert [r["Name"] for r in rows] == [f"INV-{n:06}" for n in range(1, 6)]
    paths = [c.path for c in sim.calls("salesforce", "/services/data/v62.0/query")]
    assert len(paths) == 3 and paths[1].endswith("-2") and paths[2].endswith("-4")


def test_salesforce_upsert_creates_then_updates_by_external_id(sim, connected):
    salesforce = connected("salesforce")
    created = salesforce.connector.upsert_by_external_id(salesforce.ctx, INVOICE, EXTERNAL_ID, "zx-new/1",
                                                         {"Name": "INV-900001", "rtms__Total__c": 10.0})
    assert created["created"] is True
    updated = salesforce.connector.upsert_by_external_id(salesforce.ctx, INVOICE, EXTERNAL_ID, "zx-new/1",
                                                         {"rtms__Status__c": "Paid"})
    assert updated == {"id": created["id"], "created": False}
    record = salesforce.connector.get_object(salesforce.ctx, INVOICE, created["id"], ("Name", "rtms__Status__c"))
    assert (record["Name"], record["rtms__Status__c"]) == ("INV-900001", "Paid")
    assert sim.calls("salesforce", f"/services/data/v62.0/sobjects/{INVOICE}/{EXTERNAL_ID}/")[0].path.endswith(
        "zx-new%2F1")


def test_salesforce_refuses_names_that_could_escape_the_path(connected):
    salesforce = connected("salesforce")
    for sobject, record_id in ((f"{INVOICE}/../x", "a0B5g0000010001AAA"), (INVOICE, "../../limits")):
        with pytest.raises(InvalidOptions):
            salesforce.connector.get_object(salesforce.ctx, sobject, record_id)
