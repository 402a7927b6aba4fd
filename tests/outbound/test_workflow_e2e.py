"""End to end: a signed Xero webhook "invoice paid" → event → job → HubSpot, through the outbound queue: the
simulator shows the deal moved and the note added, and the job's record lists every record it touched."""
import base64
import dataclasses
import hashlib
import hmac
import json
import uuid

from sqlalchemy import select

from core.execution.service import execute_job
from core.inbound import processor
from core.jobs.models import Job
from core.platform import runtime
from tenancy.context import tenant_context
from tenancy.db import tenant_session
from tests.outbound.conftest import deal

XERO_APP_KEY = "e2e-xero-app-webhook-key-0123456789"


def test_a_paid_xero_invoice_moves_the_hubspot_deal_and_adds_a_note(app, tenant, sim, consumers, monkeypatch):
    client = app.test_client()
    monkeypatch.setattr(runtime, "_settings", dataclasses.replace(
        runtime.settings(), app_webhook_secrets={"xero": (XERO_APP_KEY,)}))
    xero_conn = client.get(f"/v1/connections/{tenant.connections['xero']}", headers=tenant.headers).get_json()
    org_id = xero_conn["account_id"]
    # the customer, as both systems know them: a Xero contact with a paid invoice, a HubSpot contact with a deal
    email = f"buyer-{uuid.uuid4().hex[:8]}@example.com"
    xero = sim.provider("xero")
    org = xero.organisations[org_id]
    contact = xero._new_contact(org, {"Name": f"Buyer {email}", "EmailAddress": email})
    invoice = xero._new_invoice(org, {"Type": "ACCREC", "Contact": {"ContactID": contact["ContactID"]},
                                      "LineItems": [{"Description": "Setup", "Quantity": 2, "UnitAmount": 150.0}]},
                                status="PAID")
    hubspot = sim.provider("hubspot")
    person = hubspot._store(hubspot.contacts, {"firstname": "Buyer", "lastname": "E2E", "email": email})
    deal_id = deal(sim)
    hubspot.contact_deals[person["id"]] = [deal_id]
    r = client.put("/v1/workflows/xero-invoice-paid-to-hubspot", headers=tenant.headers, json={
        "enabled": True, "connections": {"source": tenant.connections["xero"],
                                         "target": tenant.connections["hubspot"]},
        "mappings": {"deal_stage": "closedwon"}})
    assert r.status_code == 200, r.get_json()

    body = json.dumps({"events": [{
        "resourceUrl": f"https://api.xero.com/api.xro/2.0/Invoices/{invoice['InvoiceID']}",
        "resourceId": invoice["InvoiceID"], "eventDateUtc": "2026-11-25T10:00:00.000", "eventType": "UPDATE",
        "eventCategory": "INVOICE", "tenantId": org_id, "tenantType": "ORGANISATION"}],
        "firstEventSequence": 1, "lastEventSequence": 1, "entropy": uuid.uuid4().hex}).encode()
    signature = base64.b64encode(hmac.new(XERO_APP_KEY.encode(), body, hashlib.sha256).digest()).decode()
    consumers(1)
    assert client.post("/v1/hooks/apps/xero", data=body, headers={"x-xero-signature": signature}).status_code == 200
    with tenant_context(tenant.ref):
        assert processor.process_pending() == 1  # the inbox processor, behind the 2xx

    with tenant_context(tenant.ref), tenant_session() as session:
        job = session.scalars(select(Job).where(Job.workflow == "xero-invoice-paid-to-hubspot")
                              .order_by(Job.created_at.desc())).first()
    with tenant_context(tenant.ref):
        assert execute_job(job.id) == "COMPLETED"

    assert hubspot.deals[deal_id]["properties"]["dealstage"] == "closedwon"
    [note] = [n for n in hubspot.notes.values() if invoice["InvoiceNumber"] in n["properties"]["hs_note_body"]]
    assert "300" in note["properties"]["hs_note_body"]
    assert {a["to"]["id"] for a in note["associations"]} == {deal_id, person["id"]}
    record = client.get(f"/v1/jobs/{job.id}", headers=tenant.headers).get_json()
    assert record["status"] == "COMPLETED" and record["result"]["deal"] == deal_id
    touched = {(r["system"], r["record_type"], r["record_id"], r["action"]) for r in record["related_records"]}
    assert {("xero", "invoice", invoice["InvoiceID"], "read"), ("hubspot", "contact", person["id"], "read"),
            ("hubspot", "deal", deal_id, "updated"), ("hubspot", "note", note["id"], "created")} <= touched
    steps = [s["name"] for s in record["steps"] if s["status"] == "done"]
    assert steps == ["read-invoice", "read-contact", "find-hubspot-contact", "move-deal", "add-note"]
    # the writes went through the deliveries, each once
    deliveries = client.get("/v1/deliveries", headers=tenant.headers,
                            query_string={"provider": "hubspot"}).get_json()["items"]
    mine = [d for d in deliveries if d.get("job_id") == str(job.id)]
    assert sorted(d["operation"] for d in mine) == ["add_note", "update_deal"]
    assert all(d["status"] == "delivered" for d in mine)
    # running the job again applies nothing twice
    patches = len([c for c in sim.calls("hubspot") if c.method == "PATCH"])
    with tenant_context(tenant.ref):
        assert execute_job(job.id) == "COMPLETED"
    assert len([c for c in sim.calls("hubspot") if c.method == "PATCH"]) == patches
