"""The simulators emit webhooks as the providers do (POST /_sandbox/webhooks): the event changes the simulator's
data first, the delivery is signed with the app's own secret and verifies with Zixly's connector schemes, a
tampered copy does not, and bad requests change nothing."""
from __future__ import annotations

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
from sandbox.hubspot import HUB_ID
from sandbox.shopify import DEMO_SHOP
from sandbox.xero import ORGANISATIONS

ORG = ORGANISATIONS[0]["tenantId"]
APPS = {"xero": ("zx-xero", "xero-client-secret", "xero-webhooks-key-0123456789"),
        "hubspot": ("zx-hubspot", "hubspot-client-secret", None),
        "shopify": ("zx-shopify", "shopify-client-secret", None)}
ACCOUNTS = {"xero": ORG, "hubspot": str(HUB_ID), "shopify": DEMO_SHOP}
EVENTS = {"xero": "invoice.paid", "hubspot": "deal.won", "shopify": "orders/create"}


@pytest.fixture
def sim():
    simulator = Simulator(poll_interval=0.02).start()
    for provider, (client_id, secret, key) in APPS.items():
        simulator.register_app(provider, client_id, secret, ["https://z.test/cb"], webhook_key=key)
    yield simulator
    simulator.stop()


@pytest.fixture
def receiver():
    """An HTTP endpoint keeping what it receives (the provider's view of Zixly's hook URL)."""
    received: list[InboundRequest] = []

    def app(environ, start_response):
        request = Request(environ)
        received.append(InboundRequest(request.method, request.url, dict(request.headers), request.get_data()))
        return Response('{"received": 1}', mimetype="application/json")(environ, start_response)

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/v1/hooks/apps/x", received
    server.shutdown()
    server.server_close()


def emit(sim, **body) -> requests.Response:
    return requests.post(f"{sim.url}/_sandbox/webhooks", json=body, timeout=10)


def signing_secret(provider: str) -> str:
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
    answer = emit(sim, provider=provider, event=EVENTS[provider], target_url=url, client_id=client_id,
                  account=ACCOUNTS[provider])
    assert answer.status_code == 200, answer.text
    [request] = received
    scheme = HubSpotScheme() if provider == "hubspot" else get_scheme(provider)
    scheme.verify(request, [signing_secret(provider)], now=time.time())
    [event] = scheme.events(request)
    assert event.resource_id == answer.json()["resource_id"]
    if provider != "shopify":  # an order names no shop in its signed body (it goes to the connection's URL)
        assert event.account_id == ACCOUNTS[provider]
    else:
        assert event.event_type == "orders/create"
    with pytest.raises(VerificationFailed):
        scheme.verify(request, ["another-secret"], now=time.time())
    tampered = InboundRequest(request.method, request.url, request.headers, request.body.replace(b"1", b"7", 1))
    with pytest.raises(VerificationFailed):
        scheme.verify(tampered, [signing_secret(provider)], now=time.time())


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
    assert listed == {"hubspot": ["deal.won"], "shopify": ["orders/create"], "xero": ["invoice.paid"]}


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
