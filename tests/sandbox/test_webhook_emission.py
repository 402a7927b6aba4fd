"""The simulators emit webhooks as the providers do (POST /_sandbox/webhooks): the event changes the simulator's
data first, the delivery is signed with the app's own secret and verifies with Zixly's connector schemes, a
tampered copy does not, and bad requests change nothing."""
from __future__ import annotations

import base64
import copy
import json
import threading
import time

import pytest
import requests
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from connectors.base import InboundRequest, VerificationFailed
from connectors.hubspot import HubSpotScheme
from connectors.registry import get_scheme
from sandbox import Simulator
from sandbox.asana import WORKSPACES
from sandbox.hubspot import HUB_ID
from sandbox.salesforce import ORG_ID
from sandbox.shopify import DEMO_SHOP
from sandbox.xero import ORGANISATIONS

ORG = ORGANISATIONS[0]["tenantId"]
APPS = {"xero": ("zx-xero", "xero-client-secret", "xero-webhooks-key-0123456789"),
        "hubspot": ("zx-hubspot", "hubspot-client-secret", None),
        "shopify": ("zx-shopify", "shopify-client-secret", None),
        "asana": ("zx-asana", "asana-client-secret", None),
        "salesforce": ("zx-salesforce", "salesforce-client-secret", None)}
SUBSCRIBER_SECRET = "whsec_" + base64.b64encode(b"z" * 24).decode()  # what Zixly gives Salesforce's setup
WORKSPACE = WORKSPACES[0]["gid"]
ACCOUNTS = {"xero": ORG, "hubspot": str(HUB_ID), "shopify": DEMO_SHOP, "asana": WORKSPACE, "salesforce": ORG_ID}
EVENTS = {"xero": "invoice.paid", "hubspot": "deal.won", "shopify": "orders/create", "asana": "task.completed",
          "salesforce": "invoice.paid"}


@pytest.fixture
def sim():
    simulator = Simulator(poll_interval=0.02).start()
    for provider, (client_id, secret, key) in APPS.items():
        simulator.register_app(provider, client_id, secret, ["https://z.test/cb"], webhook_key=key)
    yield simulator
    simulator.stop()


@pytest.fixture
def receiver():
    """An HTTP endpoint keeping what it receives (the provider's view of Zixly's hook URL); it completes Asana's
    handshake by echoing X-Hook-Secret, except under /refuse."""
    received: list[InboundRequest] = []

    def app(environ, start_response):
        request = Request(environ)
        hook_secret = request.headers.get("X-Hook-Secret")
        if hook_secret:
            echoed = {} if request.path.endswith("/refuse") else {"X-Hook-Secret": hook_secret}
            return Response(status=200, headers=echoed)(environ, start_response)
        received.append(InboundRequest(request.method, request.url, dict(request.headers), request.get_data()))
        return Response('{"received": 1}', mimetype="application/json")(environ, start_response)

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/v1/hooks/apps/x", received
    server.shutdown()
    server.server_close()


def subscribe(sim, url: str, **body) -> requests.Response:
    answer = requests.post(f"{sim.url}/_sandbox/subscriptions", timeout=10, json={
        "provider": "salesforce", "target_url": url, "secret": SUBSCRIBER_SECRET, **body})
    return answer


def emit(sim, **body) -> requests.Response:
    return requests.post(f"{sim.url}/_sandbox/webhooks", json=body, timeout=10)


def signing_secret(sim, provider: str, url: str) -> str:
    if provider == "asana":  # agreed by the handshake, per target
        return sim.provider("asana").hook_secrets[url]
    if provider == "salesforce":  # the subscriber's, configured at the sender
        return SUBSCRIBER_SECRET
    _, client_secret, key = APPS[provider]
    return key or client_secret


def test_xero_invoice_paid_marks_the_invoice_paid_then_sends_xeros_signed_delivery(sim, receiver):
    url, received = receiver
    org = sim.provider("xero").organisations[ORG]
    unpaid = sorted(i["InvoiceNumber"] for i in org.invoices.values() if i["Status"] == "AUTHORISED")
    answer = emit(sim, provider="xero", event="invoice.paid", target_url=url, client_id="zx-xero", account=ORG)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["delivered"] is True and body["status"] == 200 and body["response"] == {"received": 1}
    invoice = org.invoices[body["resource_id"]]
    assert invoice["InvoiceNumber"] == unpaid[0] and body["changed"]["invoice"] == unpaid[0]
    assert invoice["Status"] == "PAID" and invoice["AmountDue"] == 0.0 and invoice["AmountPaid"] == invoice["Total"]
    [request] = received
    payload = json.loads(request.body)
    assert set(payload) == {"events", "firstEventSequence", "lastEventSequence", "entropy"}
    [event] = payload["events"]
    assert (event["eventType"], event["eventCategory"], event["tenantId"], event["resourceId"]) == \
        ("UPDATE", "INVOICE", ORG, invoice["InvoiceID"])
    assert event["resourceUrl"].endswith(f"/Invoices/{invoice['InvoiceID']}")
    assert len(payload["entropy"]) == 20 and payload["firstEventSequence"] == payload["lastEventSequence"]


@pytest.mark.parametrize("provider", sorted(EVENTS))
def test_emitted_webhooks_verify_with_the_connectors_scheme_and_a_tampered_copy_does_not(sim, receiver, provider):
    url, received = receiver
    client_id = APPS[provider][0]
    if provider == "salesforce":
        subscribe(sim, url)
    answer = emit(sim, provider=provider, event=EVENTS[provider], target_url=url, client_id=client_id,
                  account=ACCOUNTS[provider])
    assert answer.status_code == 200, answer.text
    [request] = received
    scheme = HubSpotScheme() if provider == "hubspot" else get_scheme(provider)
    scheme.verify(request, [signing_secret(sim, provider, url)], now=time.time())
    [event] = scheme.events(request)
    named = event.payload["data"]["Id"] if provider == "salesforce" else event.resource_id  # Standard Webhooks:
    assert named == answer.json()["resource_id"]  # the record is in the body only
    if provider in ("xero", "hubspot"):  # app-level deliveries name their account in the signed body
        assert event.account_id == ACCOUNTS[provider]
    else:  # an order, a task or a Standard Webhook names none (they go to the connection's own URL)
        assert event.event_type in ("orders/create", "changed:task", "invoice.paid")
    with pytest.raises(VerificationFailed):
        scheme.verify(request, ["another-secret"], now=time.time())
    tampered = InboundRequest(request.method, request.url, request.headers, request.body.replace(b"1", b"7", 1))
    with pytest.raises(VerificationFailed):
        scheme.verify(tampered, [signing_secret(sim, provider, url)], now=time.time())


def test_hubspot_deal_won_moves_the_deal_before_it_is_announced(sim, receiver):
    url, received = receiver
    hubspot = sim.provider("hubspot")
    answer = emit(sim, provider="hubspot", event="deal.won", target_url=url, client_id="zx-hubspot",
                  account=str(HUB_ID), resource_id="9003")
    assert answer.status_code == 200 and answer.json()["resource_id"] == "9003"
    assert hubspot.deals["9003"]["properties"]["dealstage"] == "closedwon"
    [item] = json.loads(received[0].body)
    assert (item["subscriptionType"], item["objectId"], item["propertyName"], item["propertyValue"]) == \
        ("deal.propertyChange", 9003, "dealstage", "closedwon")


def _state(sim) -> tuple:
    return (copy.deepcopy(sim.provider("xero").organisations[ORG].invoices),
            copy.deepcopy(sim.provider("hubspot").deals), copy.deepcopy(sim.provider("shopify").orders))


@pytest.mark.parametrize("body, status, says", [
    ({"provider": "xero", "event": "invoice.voided"}, 400, "emits no 'invoice.voided'"),
    ({"provider": "myob"}, 400, "no simulator emits webhooks for 'myob'"),
    ({"client_id": "someone-else"}, 400, "no xero app 'someone-else'"),
    ({"target_url": "ftp://z.test/x"}, 400, "target_url must be an http(s) URL"),
    ({"account": ""}, 400, "required"),
    ({"secret": "mine"}, 400, "unknown fields: secret"),
    ({"account": "not-an-org"}, 422, "no organisation 'not-an-org'"),
    ({"resource_id": "no-such-invoice"}, 422, "no invoice 'no-such-invoice'"),
])
def test_bad_requests_are_refused_and_change_nothing(sim, receiver, body, status, says):
    url, received = receiver
    before = _state(sim)
    request = {"provider": "xero", "event": "invoice.paid", "target_url": url, "client_id": "zx-xero",
               "account": ORG, **body}
    answer = emit(sim, **request)
    assert answer.status_code == status and says in answer.json()["error"]
    assert received == [] and _state(sim) == before


def test_not_json_and_wrong_methods_are_refused(sim):
    assert requests.post(f"{sim.url}/_sandbox/webhooks", data="nope", timeout=5).status_code == 400
    assert requests.delete(f"{sim.url}/_sandbox/webhooks", timeout=5).status_code == 405
    assert requests.get(f"{sim.url}/_sandbox/elsewhere", timeout=5).status_code == 404
    listed = requests.get(f"{sim.url}/_sandbox/webhooks", timeout=5).json()["events"]
    assert listed == {"asana": ["task.completed"], "hubspot": ["deal.won"], "salesforce": ["invoice.paid"],
                      "shopify": ["orders/create"], "xero": ["invoice.paid"]}


def test_an_unreachable_target_is_a_502(sim):
    answer = emit(sim, provider="xero", event="invoice.paid", target_url="http://127.0.0.1:9/hook",
                  client_id="zx-xero", account=ORG)
    assert answer.status_code == 502 and "could not be made" in answer.json()["error"]


def test_seeded_customers_line_up_across_xero_and_hubspot(sim):
    """Every seeded Xero invoice bills a contact whose email HubSpot knows, with a deal: the first-run story
    (a paid invoice moves the customer's deal) works on the seeded data alone."""
    xero, hubspot = sim.provider("xero"), sim.provider("hubspot")
    by_email = {c["properties"]["email"]: c["id"] for c in hubspot.contacts.values()}
    for org in xero.organisations.values():
        for invoice in org.invoices.values():
            email = org.contacts[invoice["Contact"]["ContactID"]]["EmailAddress"]
            assert email in by_email, email
            deals = hubspot.contact_deals.get(by_email[email])
            assert deals and all(d in hubspot.deals for d in deals)


def test_when_every_invoice_is_paid_the_customer_is_billed_again(sim, receiver):
    url, _ = receiver
    org = sim.provider("xero").organisations[ORG]
    paid = set()
    for _ in range(sum(1 for i in org.invoices.values() if i["Status"] == "AUTHORISED") + 1):
        answer = emit(sim, provider="xero", event="invoice.paid", target_url=url, client_id="zx-xero", account=ORG)
        assert answer.status_code == 200
        paid.add(answer.json()["resource_id"])
    assert all(org.invoices[i]["Status"] == "PAID" for i in paid) and len(paid) == len(org.invoices) - 1


def test_asana_shakes_hands_once_per_target_then_signs_with_the_agreed_secret(sim, receiver):
    url, received = receiver
    asana = sim.provider("asana")
    refused = emit(sim, provider="asana", event="task.completed", target_url=url + "/refuse", client_id="zx-asana",
                   account=WORKSPACE)
    assert refused.status_code == 502 and "refused Asana's webhook handshake" in refused.json()["error"]
    assert url + "/refuse" not in asana.hook_secrets and received == []
    for _ in range(2):
        answer = emit(sim, provider="asana", event="task.completed", target_url=url, client_id="zx-asana",
                      account=WORKSPACE)
        assert answer.status_code == 200 and answer.json()["changed"] == {"task": "Send the welcome pack",
                                                                           "completed": True}
    assert len(received) == 2 and list(asana.hook_secrets) == [url]
    for request in received:
        get_scheme("asana").verify(request, [asana.hook_secrets[url]], now=time.time())
    assert all(t["completed"] for t in asana.tasks.values())


def test_salesforce_signs_with_the_secret_its_subscriber_configured_and_needs_one(sim, receiver):
    url, received = receiver
    records = sim.provider("salesforce").records["rtms__CustomerInvoice__c"]
    before = copy.deepcopy(records)
    answer = emit(sim, provider="salesforce", event="invoice.paid", target_url=url, client_id="zx-salesforce",
                  account=ORG_ID)
    assert answer.status_code == 422 and "POST /_sandbox/subscriptions" in answer.json()["error"]
    assert records == before and received == []
    for bad, says in (({"provider": "xero"}, "only salesforce"), ({"secret": "plain"}, "whsec_"),
                      ({"secret": ""}, "non-empty"), ({"extra": 1}, "exactly provider")):
        refused = subscribe(sim, url, **bad)
        assert refused.status_code == 400 and says in refused.json()["error"], refused.json()
    assert subscribe(sim, url).status_code == 201
    answer = emit(sim, provider="salesforce", event="invoice.paid", target_url=url, client_id="zx-salesforce",
                  account=ORG_ID)
    assert answer.status_code == 200 and records[answer.json()["resource_id"]]["rtms__Status__c"] == "Paid"
    [request] = received
    assert request.headers["Webhook-Id"].startswith("msg_")
    get_scheme("salesforce").verify(request, [SUBSCRIBER_SECRET], now=time.time())
