"""Webhooks the simulators send, signed by their own implementation, verify with the connectors' schemes."""
from __future__ import annotations

import base64
import json
import secrets
import threading
import time

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from connectors.base import InboundRequest, VerificationFailed
from connectors.registry import get_scheme
from sandbox.signing import xero_intent_to_receive

SECRETS = {
    "xero": secrets.token_urlsafe(32), "hubspot": secrets.token_urlsafe(24), "shopify": secrets.token_hex(16),
    "asana": secrets.token_hex(16), "salesforce": "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode(),
    "custom": "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode(),
}
PAYLOADS = {
    "xero": {"events": [{"resourceUrl": "https://api.xero.com/api.xro/2.0/Invoices/1", "resourceId": "1",
                         "eventDateUtc": "2024-05-01T10:00:00.000", "eventType": "UPDATE",
                         "eventCategory": "INVOICE", "tenantId": "6f5b0a1c-3c2e-4f4e-9d1a-0a1b2c3d4e5f",
                         "tenantType": "ORGANISATION"}],
             "firstEventSequence": 1, "lastEventSequence": 1, "entropy": "ABCDEFGHIJ"},
    "hubspot": [{"eventId": 100, "subscriptionId": 7, "portalId": 7700111, "occurredAt": 1714557600000,
                 "subscriptionType": "deal.propertyChange", "objectId": 9001, "propertyName": "dealstage"}],
    "shopify": {"id": 450789469, "name": "#1001", "total_price": "598.94"},
    "asana": {"events": [{"action": "changed", "resource": {"gid": "1200000000001000", "resource_type": "task"},
                          "created_at": "2024-05-01T10:00:00.000Z", "user": {"gid": "1"},
                          "change": {"field": "completed"}}]},
    "salesforce": {"type": "invoice.updated", "timestamp": "2024-05-01T10:00:00Z",
                   "data": {"Id": "a0B5g0000010001AAA"}},
    "custom": {"type": "order.shipped", "data": {"id": 1}},
}


@pytest.fixture
def receiver():
    """A tiny HTTP endpoint that keeps what it received, as Zixly's /v1/hooks endpoint would."""
    received: list[InboundRequest] = []

    def app(environ, start_response):
        request = Request(environ)
        received.append(InboundRequest(request.method, request.url, dict(request.headers), request.get_data()))
        return Response("ok")(environ, start_response)

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/v1/hooks/tok_abc", received
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("provider", sorted(SECRETS))
def test_sandbox_signature_verifies_with_the_connector_scheme(sim, receiver, provider):
    url, received = receiver
    answer = sim.send_webhook(provider, url, PAYLOADS[provider], SECRETS[provider])
    assert answer.status_code == 200
    request = received[-1]
    scheme = get_scheme(provider)
    scheme.verify(request, [SECRETS[provider]], now=time.time())
    assert scheme.events(request)
    with pytest.raises(VerificationFailed):
        scheme.verify(request, ["some-other-secret", "whsec_" + base64.b64encode(b"x" * 24).decode()],
                      now=time.time())
    tampered = InboundRequest(request.method, request.url, request.headers, request.body.replace(b"1", b"2", 1))
    with pytest.raises(VerificationFailed):
        scheme.verify(tampered, [SECRETS[provider]], now=time.time())


def test_shopify_delivery_is_known_by_its_signed_body_not_its_headers(sim, receiver):
    """The simulator's headers name a shop and a webhook id; neither is signed, so neither is used: an order names
    no account, a shop/update names the shop in its body, and the same body sent twice is one event id."""
    url, received = receiver
    scheme = get_scheme("shopify")
    for webhook_id in ("wh-1", "wh-2"):
        sim.send_webhook("shopify", url, PAYLOADS["shopify"], SECRETS["shopify"], shop="acme.myshopify.com",
                         topic="orders/paid", webhook_id=webhook_id)
    first, second = (scheme.events(r)[0] for r in received[-2:])
    assert (first.event_type, first.account_id) == ("orders/paid", None)
    assert first.event_id == second.event_id
    shop = {"id": 548380009, "myshopify_domain": "acme.myshopify.com", "updated_at": "2024-05-01T10:00:00Z"}
    sim.send_webhook("shopify", url, shop, SECRETS["shopify"], shop="other.myshopify.com", topic="shop/update")
    [event] = scheme.events(received[-1])
    assert (event.event_type, event.account_id) == ("shop/update", "acme.myshopify.com")


def test_xero_intent_to_receive_pair():
    secret = SECRETS["xero"]
    scheme = get_scheme("xero")
    good_body, good_headers = xero_intent_to_receive(True, secret)
    scheme.verify(InboundRequest("POST", "https://z.test/h", good_headers, good_body), [secret], now=time.time())
    bad_body, bad_headers = xero_intent_to_receive(False, secret)
    with pytest.raises(VerificationFailed):
        scheme.verify(InboundRequest("POST", "https://z.test/h", bad_headers, bad_body), [secret], now=time.time())
    assert json.loads(good_body)["events"] == []
