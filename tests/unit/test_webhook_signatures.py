"""Webhook signature verification and event splitting for every provider scheme, with no servers.

Expected signatures are built here with hmac/hashlib from each provider's documented recipe, never with the
module's own helpers, so a wrong recipe in the module fails these tests.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets as random
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from connectors.asana import AsanaScheme
from connectors.base import (
    Handshake,
    InboundRequest,
    MalformedPayload,
    VerificationFailed,
    WebhookScheme,
)
from connectors.hubspot import HubSpotScheme
from connectors.registry import SCHEMES, UnknownProvider, get_scheme
from connectors.salesforce import SalesforceScheme
from connectors.shopify import ShopifyScheme
from connectors.standard_webhooks import StandardWebhooksScheme
from connectors.xero import XeroScheme

NOW = 1_700_000_000.0
URL = "https://hooks.zixly.test/webhooks/acme?source=crm"
STANDARD_ID = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
BODY = b'{"events":[],"firstEventSequence":0,"lastEventSequence":0,"entropy":"QWERTYUIOP"}'


def _hmac(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def request(headers: dict, body: bytes = BODY, url: str = URL, method: str = "POST") -> InboundRequest:
    return InboundRequest(method=method, url=url, headers=headers, body=body)


def plain_secret() -> str:
    return random.token_urlsafe(32)


def whsec_secret() -> str:
    return "whsec_" + _b64(random.token_bytes(24))


def whsec_key(secret: str) -> bytes:
    return base64.b64decode(secret[len("whsec_"):])


# Each signer builds the headers a provider would send, following that provider's docs.
def sign_xero(secret: str, body: bytes, now: float) -> dict[str, str]:
    return {"x-xero-signature": _b64(_hmac(secret.encode(), body))}


def sign_shopify(secret: str, body: bytes, now: float) -> dict[str, str]:
    return {
        "X-Shopify-Hmac-Sha256": _b64(_hmac(secret.encode(), body)),
        "X-Shopify-Webhook-Id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
        "X-Shopify-Topic": "orders/create",
        "X-Shopify-Shop-Domain": "acme.myshopify.com",
    }


def sign_asana(secret: str, body: bytes, now: float) -> dict[str, str]:
    return {"X-Hook-Signature": hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}


def sign_hubspot_v3(secret: str, body: bytes, now: float, url: str = URL) -> dict[str, str]:
    timestamp = str(int(now * 1000))
    source = b"POST" + url.encode() + body + timestamp.encode()
    return {"X-HubSpot-Signature-v3": _b64(_hmac(secret.encode(), source)),
            "X-HubSpot-Request-Timestamp": timestamp}


def sign_hubspot_v1(secret: str, body: bytes, now: float) -> dict[str, str]:
    return {"X-HubSpot-Signature": hashlib.sha256(secret.encode() + body).hexdigest(),
            "X-HubSpot-Signature-Version": "v1"}


def sign_hubspot_v2(secret: str, body: bytes, now: float) -> dict[str, str]:
    source = secret.encode() + b"POST" + URL.encode() + body
    return {"X-HubSpot-Signature": hashlib.sha256(source).hexdigest(), "X-HubSpot-Signature-Version": "v2"}


def sign_standard(secret: str, body: bytes, now: float, msg_id: str = STANDARD_ID) -> dict[str, str]:
    timestamp = str(int(now))
    signature = _b64(_hmac(whsec_key(secret), f"{msg_id}.{timestamp}.".encode() + body))
    return {"webhook-id": msg_id, "webhook-timestamp": timestamp, "webhook-signature": f"v1,{signature}"}


@dataclass(frozen=True)
class Case:
    name: str
    scheme: WebhookScheme
    sign: Callable[[str, bytes, float], dict[str, str]]
    signature_header: str
    make_secret: Callable[[], str] = plain_secret


CASES = [
    Case("xero", XeroScheme(), sign_xero, "x-xero-signature"),
    Case("shopify", ShopifyScheme(), sign_shopify, "X-Shopify-Hmac-Sha256"),
    Case("asana", AsanaScheme(), sign_asana, "X-Hook-Signature"),
    Case("hubspot-v3", HubSpotScheme(), sign_hubspot_v3, "X-HubSpot-Signature-v3"),
    Case("hubspot-v1", HubSpotScheme(legacy_versions=("v1",)), sign_hubspot_v1, "X-HubSpot-Signature"),
    Case("hubspot-v2", HubSpotScheme(legacy_versions=("v2",)), sign_hubspot_v2, "X-HubSpot-Signature"),
    Case("custom", StandardWebhooksScheme(), sign_standard, "webhook-signature", whsec_secret),
    Case("salesforce", SalesforceScheme(), sign_standard, "webhook-signature", whsec_secret),
]
by_name = pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])

GARBAGE_SIGNATURES = [
    "not base64 !!!",
    "v1,not base64 !!!",
    "v1,",
    ",,, v1 v2,",
    "ünïcødé-签名-🔑",
    "v1,ünïcødé",
    "\udcff\udcfe",
    "=" * 500,
    "a" * 10_000,
    "00" * 32,
    "ZZZZ",
]


def signed(case: Case, secret: str, body: bytes = BODY, now: float = NOW) -> InboundRequest:
    return request(case.sign(secret, body, now), body=body)


@by_name
def test_valid_signature_is_accepted(case: Case) -> None:
    secret = case.make_secret()
    case.scheme.verify(signed(case, secret), [secret], now=NOW)


@by_name
def test_header_names_are_case_insensitive(case: Case) -> None:
    secret = case.make_secret()
    headers = {k.upper(): v for k, v in case.sign(secret, BODY, NOW).items()}
    case.scheme.verify(request(headers), [secret], now=NOW)


@by_name
def test_tampered_body_is_rejected(case: Case) -> None:
    secret = case.make_secret()
    headers = case.sign(secret, BODY, NOW)
    with pytest.raises(VerificationFailed, match="mismatch"):
        case.scheme.verify(request(headers, body=BODY.replace(b"QWERTY", b"QWERTZ")), [secret], now=NOW)


@by_name
def test_wrong_secret_is_rejected(case: Case) -> None:
    with pytest.raises(VerificationFailed, match="mismatch"):
        case.scheme.verify(signed(case, case.make_secret()), [case.make_secret()], now=NOW)


@by_name
def test_missing_signature_header_is_rejected(case: Case) -> None:
    secret = case.make_secret()
    headers = case.sign(secret, BODY, NOW)
    del headers[case.signature_header]
    with pytest.raises(VerificationFailed, match="missing"):
        case.scheme.verify(request(headers), [secret], now=NOW)


@by_name
@pytest.mark.parametrize("configured", [[], (), None, [""]])
def test_no_active_secret_is_rejected(case: Case, configured: object) -> None:
    with pytest.raises(VerificationFailed, match="no active secret"):
        case.scheme.verify(signed(case, case.make_secret()), configured, now=NOW)


@by_name
def test_rotation_accepts_old_and_new_but_not_a_retired_secret(case: Case) -> None:
    old, new, retired = case.make_secret(), case.make_secret(), case.make_secret()
    case.scheme.verify(signed(case, old), [old, new], now=NOW)
    case.scheme.verify(signed(case, new), [old, new], now=NOW)
    with pytest.raises(VerificationFailed):
        case.scheme.verify(signed(case, retired), [old, new], now=NOW)


@by_name
@pytest.mark.parametrize("garbage", GARBAGE_SIGNATURES)
def test_garbage_signature_raises_only_verification_failed(case: Case, garbage: str) -> None:
    secret = case.make_secret()
    headers = {**case.sign(secret, BODY, NOW), case.signature_header: garbage}
    with pytest.raises(VerificationFailed):
        case.scheme.verify(request(headers), [secret], now=NOW)


@by_name
@pytest.mark.parametrize("bad", [
    {"method": None}, {"url": None}, {"body": None}, {"body": "text, not bytes"}, {"url": "https://x/\udcff"},
])
def test_hostile_request_fields_raise_only_verification_failed(case: Case, bad: dict) -> None:
    secret = case.make_secret()
    fields = {"method": "POST", "url": URL, "headers": case.sign(secret, BODY, NOW), "body": BODY, **bad}
    try:
        case.scheme.verify(InboundRequest(**fields), [secret], now=NOW)
    except VerificationFailed:
        pass


@by_name
def test_failure_reason_never_leaks_secret_or_body(case: Case) -> None:
    secret, other = case.make_secret(), case.make_secret()
    with pytest.raises(VerificationFailed) as failure:
        case.scheme.verify(signed(case, secret), [other], now=NOW)
    reason = str(failure.value)
    assert secret not in reason and other not in reason and "QWERTY" not in reason
    assert len(reason) < 80


# --- timestamps: HubSpot v3 (ms) and Standard Webhooks (s), 5 minutes either way ---

TIMED = [c for c in CASES if c.name in ("hubspot-v3", "custom", "salesforce")]
timed = pytest.mark.parametrize("case", TIMED, ids=[c.name for c in TIMED])


@timed
@pytest.mark.parametrize("offset", [-299, 0, 299])
def test_timestamp_within_five_minutes_is_accepted(case: Case, offset: int) -> None:
    secret = case.make_secret()
    case.scheme.verify(signed(case, secret, now=NOW + offset), [secret], now=NOW)


@timed
def test_stale_timestamp_is_rejected_even_with_a_valid_signature(case: Case) -> None:
    secret = case.make_secret()
    with pytest.raises(VerificationFailed, match="stale"):
        case.scheme.verify(signed(case, secret, now=NOW - 301), [secret], now=NOW)


@timed
def test_future_timestamp_is_rejected_even_with_a_valid_signature(case: Case) -> None:
    secret = case.make_secret()
    with pytest.raises(VerificationFailed, match="future"):
        case.scheme.verify(signed(case, secret, now=NOW + 301), [secret], now=NOW)


@timed
@pytest.mark.parametrize("timestamp", ["", "soon", "-5", "1.5e12", "١٧٠٠٠٠٠٠٠٠", "9" * 5000])
def test_unparseable_timestamp_is_rejected(case: Case, timestamp: str) -> None:
    secret = case.make_secret()
    headers = case.sign(secret, BODY, NOW)
    ts_header = next(k for k in headers if k.lower().endswith("timestamp"))
    with pytest.raises(VerificationFailed):
        case.scheme.verify(request({**headers, ts_header: timestamp}), [secret], now=NOW)


@timed
def test_missing_timestamp_header_is_rejected(case: Case) -> None:
    secret = case.make_secret()
    headers = case.sign(secret, BODY, NOW)
    ts_header = next(k for k in headers if k.lower().endswith("timestamp"))
    del headers[ts_header]
    with pytest.raises(VerificationFailed, match="missing"):
        case.scheme.verify(request(headers), [secret], now=NOW)


# --- Xero ---

def xero_event(tenant: str, resource: str = "717f2bfc-c6d4-41fd-b238-3f2f0c0cf777", **extra: str) -> dict:
    return {"resourceUrl": f"https://api.xero.com/api.xro/2.0/Invoices/{resource}", "resourceId": resource,
            "eventDateUtc": "2025-10-21T01:15:39.902", "eventType": "UPDATE", "eventCategory": "INVOICE",
            "tenantId": tenant, "tenantType": "ORGANISATION", **extra}


def xero_delivery(*events: dict) -> InboundRequest:
    body = {"events": list(events), "firstEventSequence": 1, "lastEventSequence": len(events), "entropy": "X"}
    return request({}, body=json.dumps(body).encode())


def test_xero_delivery_splits_per_event_with_each_tenant_as_account() -> None:
    delivery = xero_delivery(xero_event("tenant-a"), xero_event("tenant-b", eventType="CREATE"))
    first, second = XeroScheme().events(delivery)
    assert (first.account_id, second.account_id) == ("tenant-a", "tenant-b")
    assert (first.event_type, second.event_type) == ("UPDATE:INVOICE", "CREATE:INVOICE")
    assert first.resource_id == "717f2bfc-c6d4-41fd-b238-3f2f0c0cf777"
    assert first.occurred_at == "2025-10-21T01:15:39.902"
    assert first.payload == xero_event("tenant-a")


def test_xero_event_type_is_upper_case_whatever_the_case_sent() -> None:
    # Xero's own docs show both "Update" and "UPDATE".
    (event,) = XeroScheme().events(xero_delivery(xero_event("tenant-a", eventType="Update")))
    assert event.event_type == "UPDATE:INVOICE"


def test_xero_intent_to_receive_has_no_events() -> None:
    assert XeroScheme().events(request({}, body=BODY)) == []
    assert XeroScheme().events(request({}, body=b'{"events":null,"entropy":"X"}')) == []


def test_xero_event_id_is_sha256_of_identifying_fields() -> None:
    event = xero_event("tenant-a")
    fields = [event[k] for k in ("tenantId", "resourceId", "eventType", "eventCategory", "eventDateUtc")]
    expected = hashlib.sha256("|".join(fields).encode()).hexdigest()
    assert XeroScheme().events(xero_delivery(event))[0].event_id == expected


def test_xero_event_id_is_stable_across_redeliveries_and_distinct_between_events() -> None:
    once = XeroScheme().events(xero_delivery(xero_event("tenant-a")))[0].event_id
    again = XeroScheme().events(xero_delivery(xero_event("tenant-a", entropy="other")))[0].event_id
    other_tenant = XeroScheme().events(xero_delivery(xero_event("tenant-b")))[0].event_id
    later = XeroScheme().events(xero_delivery(xero_event("tenant-a", eventDateUtc="2025-10-21T01:16:00")))
    assert once == again
    assert len({once, other_tenant, later[0].event_id}) == 3


@pytest.mark.parametrize("body", [b"{not json", b"", b"\xff\xfe", b"[]", b'{"entropy":"X"}', b'{"events":{}}',
                                  b'{"events":["x"]}', b'{"events":[{"tenantId":"t"}]}'])
def test_xero_malformed_payload(body: bytes) -> None:
    with pytest.raises(MalformedPayload):
        XeroScheme().events(request({}, body=body))


# --- HubSpot ---

HUBSPOT_BODY = json.dumps([
    {"eventId": 100, "subscriptionId": 7, "portalId": 62515, "appId": 54321, "occurredAt": 1564113600000,
     "subscriptionType": "deal.propertyChange", "attemptNumber": 0, "objectId": 123,
     "propertyName": "amount"},
    {"eventId": 101, "subscriptionId": 8, "portalId": 62516, "appId": 54321, "occurredAt": 1564113600001,
     "subscriptionType": "contact.creation", "attemptNumber": 1, "objectId": 456},
]).encode()


def test_hubspot_array_splits_into_events() -> None:
    deal, contact = HubSpotScheme().events(request({}, body=HUBSPOT_BODY))
    assert (deal.event_id, deal.event_type, deal.account_id) == ("100", "deal.propertyChange", "62515")
    assert (deal.resource_id, deal.occurred_at) == ("123", "1564113600000")
    assert (contact.event_id, contact.event_type, contact.account_id) == ("101", "contact.creation", "62516")
    assert deal.payload["propertyName"] == "amount"


@pytest.mark.parametrize("body", [b"not json", b'{"eventId":1}', b'[{"portalId":1}]', b"[1]"])
def test_hubspot_malformed_payload(body: bytes) -> None:
    with pytest.raises(MalformedPayload):
        HubSpotScheme().events(request({}, body=body))


def test_hubspot_v3_signs_the_uri_with_the_documented_escapes_decoded() -> None:
    secret = plain_secret()
    sent = "https://hooks.zixly.test/hs?tenant=acme%3Aprod&list=a%2Cb%2cc&at=%40x&path=%2Fy&name=a%20b"
    signed_as = "https://hooks.zixly.test/hs?tenant=acme:prod&list=a,b,c&at=@x&path=/y&name=a%20b"
    headers = sign_hubspot_v3(secret, HUBSPOT_BODY, NOW, url=signed_as)
    HubSpotScheme().verify(request(headers, body=HUBSPOT_BODY, url=sent), [secret], now=NOW)


LEGACY = HubSpotScheme(legacy_versions=("v1", "v2"))


def test_hubspot_v3_is_preferred_over_legacy_headers() -> None:
    secret = plain_secret()
    headers = {**sign_hubspot_v1(secret, BODY, NOW), **sign_hubspot_v3(secret, BODY, NOW)}
    LEGACY.verify(request(headers), [secret], now=NOW)
    stale_v3 = {**sign_hubspot_v1(secret, BODY, NOW), **sign_hubspot_v3(secret, BODY, NOW - 3600)}
    with pytest.raises(VerificationFailed, match="stale"):
        LEGACY.verify(request(stale_v3), [secret], now=NOW)


def test_hubspot_v3_signature_covers_method_and_url() -> None:
    secret = plain_secret()
    headers = sign_hubspot_v3(secret, BODY, NOW)
    with pytest.raises(VerificationFailed):
        HubSpotScheme().verify(request(headers, url=URL + "&extra=1"), [secret], now=NOW)
    with pytest.raises(VerificationFailed):
        HubSpotScheme().verify(request(headers, method="PUT"), [secret], now=NOW)


@pytest.mark.parametrize("sign", [sign_hubspot_v1, sign_hubspot_v2], ids=["v1", "v2"])
def test_hubspot_legacy_signatures_are_refused_by_default(sign) -> None:
    """A correctly signed v1/v2 delivery (no timestamp: replayable forever) is refused unless configured."""
    secret = plain_secret()
    with pytest.raises(VerificationFailed, match="missing X-HubSpot-Signature-v3"):
        HubSpotScheme().verify(request(sign(secret, BODY, NOW)), [secret], now=NOW)


def test_hubspot_v3_delivery_downgraded_to_v2_is_refused() -> None:
    """Strip a real v3 delivery's v3 headers and add a valid v2 signature: refused by default; a scheme configured
    for v1 only refuses the v2 one too."""
    secret = plain_secret()
    v3 = sign_hubspot_v3(secret, BODY, NOW)
    HubSpotScheme().verify(request(v3), [secret], now=NOW)
    downgraded = sign_hubspot_v2(secret, BODY, NOW)
    with pytest.raises(VerificationFailed):
        HubSpotScheme().verify(request(downgraded), [secret], now=NOW)
    with pytest.raises(VerificationFailed, match="v2 signatures are not accepted"):
        HubSpotScheme(legacy_versions=("v1",)).verify(request(downgraded), [secret], now=NOW)
    HubSpotScheme(legacy_versions=("v2",)).verify(request(downgraded), [secret], now=NOW)  # only where configured


@pytest.mark.parametrize("versions", [("v3",), ("v0",), ("V1",)])
def test_hubspot_legacy_versions_are_only_v1_and_v2(versions) -> None:
    with pytest.raises(ValueError):
        HubSpotScheme(legacy_versions=versions)


@pytest.mark.parametrize("version", [None, "v9", ""])
def test_hubspot_legacy_needs_a_known_version(version: str | None) -> None:
    secret = plain_secret()
    headers = sign_hubspot_v1(secret, BODY, NOW)
    del headers["X-HubSpot-Signature-Version"]
    if version is not None:
        headers["X-HubSpot-Signature-Version"] = version
    with pytest.raises(VerificationFailed):
        LEGACY.verify(request(headers), [secret], now=NOW)


def test_hubspot_v2_covers_the_url() -> None:
    secret = plain_secret()
    with pytest.raises(VerificationFailed):
        LEGACY.verify(request(sign_hubspot_v2(secret, BODY, NOW), url=URL + "x"), [secret], now=NOW)


HUBSPOT_DOC_SECRET = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"


def test_hubspot_v1_documented_example() -> None:
    body = (b'[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,'
            b'"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,"changeSource":"CRM",'
            b'"changeFlag":"NEW","appId":54321}]')
    headers = {"X-HubSpot-Signature": "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de",
               "X-HubSpot-Signature-Version": "v1"}
    LEGACY.verify(request(headers, body=body), [HUBSPOT_DOC_SECRET], now=NOW)


def test_hubspot_v2_documented_example() -> None:
    headers = {"X-HubSpot-Signature": "9569219f8ba981ffa6f6f16aa0f48637d35d728c7e4d93d0d52efaa512af7900",
               "X-HubSpot-Signature-Version": "v2"}
    body = b'{"example_field":"example_value"}'
    hooked = request(headers, body=body, url="https://www.example.com/webhook_uri")
    LEGACY.verify(hooked, [HUBSPOT_DOC_SECRET], now=NOW)


# --- Shopify: only the signed body is trusted (routing, de-duplication, time) ---

SHOPIFY_ORDER = json.dumps({"id": 820982911946154508, "email": "jon@example.com",
                            "created_at": "2023-11-14T17:00:00-05:00",
                            "updated_at": "2023-11-14T17:13:20-05:00"}).encode()  # 22:13:20Z, NOW
SHOPIFY_SHOP = json.dumps({"id": 548380009, "name": "Acme", "domain": "shop.acme.example",
                           "myshopify_domain": "acme.myshopify.com",
                           "updated_at": "2023-11-14T22:00:00Z"}).encode()
SHOPIFY_REDACT = json.dumps({"shop_id": 954889, "shop_domain": "acme.myshopify.com"}).encode()


def shopify_delivery(body: bytes, topic: str = "orders/create", secret: str = "s", **headers: str) -> InboundRequest:
    return request({**sign_shopify(secret, body, NOW), "X-Shopify-Topic": topic, **headers}, body=body)


def test_shopify_order_event_names_no_account_whatever_the_shop_header_says() -> None:
    """An order body names no shop, so its event has no account: the unsigned X-Shopify-Shop-Domain is ignored."""
    (event,) = ShopifyScheme().events(shopify_delivery(SHOPIFY_ORDER))
    assert (event.event_type, event.account_id) == ("orders/create", None)
    assert event.resource_id == "820982911946154508" and event.payload["email"] == "jon@example.com"
    assert event.occurred_at == "2023-11-14T17:13:20-05:00"  # the body's own updated_at, not a header


@pytest.mark.parametrize(("topic", "body"), [("shop/update", SHOPIFY_SHOP), ("app/uninstalled", SHOPIFY_SHOP),
                                             ("shop/redact", SHOPIFY_REDACT), ("customers/redact", SHOPIFY_REDACT)])
def test_shopify_account_is_the_shop_the_body_names(topic: str, body: bytes) -> None:
    forged = shopify_delivery(body, topic, **{"X-Shopify-Shop-Domain": "victim.myshopify.com"})
    (event,) = ShopifyScheme().events(forged)
    assert event.account_id == "acme.myshopify.com"


@pytest.mark.parametrize("shop", [None, "acme.myshopify.com/admin", "evil.example.com", 42])
def test_shopify_shop_topic_without_a_valid_shop_in_the_body_is_malformed(shop) -> None:
    body = json.dumps({"id": 1, "myshopify_domain": shop}).encode()
    with pytest.raises(MalformedPayload):
        ShopifyScheme().events(shopify_delivery(body, "shop/update"))


def test_shopify_event_id_is_the_signed_body_not_the_webhook_id_header() -> None:
    """A replay with a fresh X-Shopify-Webhook-Id has the same event id (a duplicate); another body another id;
    the same body under another topic (orders/create and orders/paid of an order created paid) another id."""
    scheme = ShopifyScheme()
    (first,) = scheme.events(shopify_delivery(SHOPIFY_ORDER, **{"X-Shopify-Webhook-Id": "id-1"}))
    (replay,) = scheme.events(shopify_delivery(SHOPIFY_ORDER, **{"X-Shopify-Webhook-Id": "id-2"}))
    (bare,) = scheme.events(request({"X-Shopify-Topic": "orders/create"}, body=SHOPIFY_ORDER))
    (other,) = scheme.events(shopify_delivery(SHOPIFY_ORDER.replace(b"jon@", b"ann@")))
    (paid,) = scheme.events(shopify_delivery(SHOPIFY_ORDER, "orders/paid"))
    assert first.event_id == replay.event_id == bare.event_id
    assert first.event_id == hashlib.sha256(f"shopify|orders/create|{hashlib.sha256(SHOPIFY_ORDER).hexdigest()}"
                                            .encode()).hexdigest()
    assert len({first.event_id, other.event_id, paid.event_id}) == 3


@pytest.mark.parametrize("age_hours", [0, 23.9, -23.9])
def test_shopify_signed_body_within_a_day_is_accepted(age_hours: float) -> None:
    secret = plain_secret()
    ShopifyScheme().verify(shopify_delivery(SHOPIFY_ORDER, secret=secret), [secret], now=NOW + age_hours * 3600)


def test_shopify_replay_of_a_body_older_than_a_day_is_refused() -> None:
    """A captured delivery replayed later (with any fresh headers) is refused: its signed updated_at is too old."""
    secret = plain_secret()
    replay = shopify_delivery(SHOPIFY_ORDER, secret=secret, **{"X-Shopify-Webhook-Id": str(NOW),
                                                               "X-Shopify-Triggered-At": "2023-11-16T00:00:00Z"})
    with pytest.raises(VerificationFailed, match="stale"):
        ShopifyScheme().verify(replay, [secret], now=NOW + 24 * 3600 + 1)


def test_shopify_uses_created_at_when_the_body_has_no_updated_at() -> None:
    secret = plain_secret()
    body = json.dumps({"id": 1, "created_at": "2023-11-13T22:13:19Z"}).encode()  # a day and a second before NOW
    with pytest.raises(VerificationFailed, match="stale"):
        ShopifyScheme().verify(shopify_delivery(body, secret=secret), [secret], now=NOW)


@pytest.mark.parametrize("stamp", ["yesterday", "2023-11-14T22:13:20", 1700000000])
def test_shopify_unreadable_or_naive_timestamp_is_refused(stamp) -> None:
    secret = plain_secret()
    body = json.dumps({"id": 1, "updated_at": stamp}).encode()
    with pytest.raises(VerificationFailed, match="timestamp"):
        ShopifyScheme().verify(shopify_delivery(body, secret=secret), [secret], now=NOW)


def test_shopify_body_without_timestamp_cannot_be_bounded_in_time() -> None:
    """The compliance topics carry no timestamp: accepted whenever signed (their replay is still a duplicate)."""
    secret = plain_secret()
    ShopifyScheme().verify(shopify_delivery(SHOPIFY_REDACT, "shop/redact", secret), [secret], now=NOW + 10**7)


def test_shopify_body_without_id_has_no_resource() -> None:
    (event,) = ShopifyScheme().events(request(sign_shopify("s", b"{}", NOW), body=b"{}"))
    assert event.resource_id is None and event.occurred_at is None


@pytest.mark.parametrize("body", [b"{oops", b"[1, 2]", b'"text"'])
def test_shopify_malformed_payload(body: bytes) -> None:
    secret = plain_secret()
    ShopifyScheme().verify(request(sign_shopify(secret, body, NOW), body=body), [secret], now=NOW)  # signed: 400
    with pytest.raises(MalformedPayload):
        ShopifyScheme().events(request(sign_shopify("s", body, NOW), body=body))


# --- Asana ---

ASANA_USER = {"gid": "1", "resource_type": "user"}
ASANA_TASK = {"gid": "111", "resource_type": "task"}
ASANA_BODY = json.dumps({"events": [
    {"user": ASANA_USER, "created_at": "2024-01-01T10:00:00.000Z", "action": "changed",
     "resource": ASANA_TASK, "parent": None, "change": {"field": "name", "action": "changed"}},
    {"user": ASANA_USER, "created_at": "2024-01-01T10:00:00.000Z", "action": "changed",
     "resource": ASANA_TASK, "parent": None, "change": {"field": "notes", "action": "changed"}},
    {"user": None, "created_at": "2024-01-01T10:00:01.000Z", "action": "added",
     "resource": {"gid": "222", "resource_type": "story"}, "parent": ASANA_TASK},
]}).encode()


def test_asana_handshake_echoes_the_hook_secret() -> None:
    hook_secret = "b537207f20cbfa02357cf448134da559e8bd39d61597dcd5631b8012eae53e81"
    answer = AsanaScheme().handshake(request({"x-hook-secret": hook_secret}, body=b""))
    assert answer == Handshake(status=200, headers={"X-Hook-Secret": hook_secret})


def test_only_asana_answers_a_handshake() -> None:
    assert AsanaScheme().handshake(request(sign_asana("s", ASANA_BODY, NOW), body=ASANA_BODY)) is None
    for name, scheme in SCHEMES.items():
        if name != "asana":
            assert scheme.handshake(request({"X-Hook-Secret": "abc"})) is None


def test_asana_events_split_with_stable_distinct_ids() -> None:
    events = AsanaScheme().events(request({}, body=ASANA_BODY))
    assert [e.event_type for e in events] == ["changed:task", "changed:task", "added:story"]
    assert [e.resource_id for e in events] == ["111", "111", "222"]
    assert all(e.account_id is None for e in events)
    assert events[0].occurred_at == "2024-01-01T10:00:00.000Z"
    expected = hashlib.sha256(b"111|changed|2024-01-01T10:00:00.000Z|1|name").hexdigest()
    assert events[0].event_id == expected
    assert len({e.event_id for e in events}) == 3
    again = AsanaScheme().events(request({}, body=ASANA_BODY))
    assert [e.event_id for e in again] == [e.event_id for e in events]


def test_asana_heartbeat_has_no_events() -> None:
    assert AsanaScheme().events(request({}, body=b'{"events": []}')) == []


@pytest.mark.parametrize("body", [b"nope", b"[]", b'{"events": "x"}', b'{"events": [{"action": "added"}]}'])
def test_asana_malformed_payload(body: bytes) -> None:
    with pytest.raises(MalformedPayload):
        AsanaScheme().events(request({}, body=body))


# --- Standard Webhooks (custom, salesforce) ---

def test_standard_webhooks_spec_example_vector() -> None:
    headers = {"webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek", "webhook-timestamp": "1614265330",
               "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="}
    hooked = request(headers, body=b'{"test": 2432232314}')
    StandardWebhooksScheme().verify(hooked, ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"], now=1614265330)


def test_standard_webhooks_key_is_the_decoded_secret_not_its_text() -> None:
    secret = whsec_secret()
    timestamp = str(int(NOW))
    as_text = _b64(_hmac(secret.encode(), f"msg_1.{timestamp}.".encode() + BODY))
    headers = {"webhook-id": "msg_1", "webhook-timestamp": timestamp, "webhook-signature": f"v1,{as_text}"}
    with pytest.raises(VerificationFailed):
        StandardWebhooksScheme().verify(request(headers), [secret], now=NOW)


def test_standard_webhooks_accepts_any_listed_v1_signature() -> None:
    old, new = whsec_secret(), whsec_secret()
    headers = sign_standard(old, BODY, NOW)
    fresh = sign_standard(new, BODY, NOW)["webhook-signature"]
    headers["webhook-signature"] = f"v1a,c29tZXRoaW5n {headers['webhook-signature']} {fresh}"
    StandardWebhooksScheme().verify(request(headers), [new], now=NOW)


def test_standard_webhooks_signature_covers_the_id() -> None:
    secret = whsec_secret()
    headers = {**sign_standard(secret, BODY, NOW), "webhook-id": "msg_other"}
    with pytest.raises(VerificationFailed, match="mismatch"):
        StandardWebhooksScheme().verify(request(headers), [secret], now=NOW)


def test_standard_webhooks_secret_that_is_not_base64_is_rejected_cleanly() -> None:
    headers = sign_standard(whsec_secret(), BODY, NOW)
    with pytest.raises(VerificationFailed, match="no usable secret"):
        StandardWebhooksScheme().verify(request(headers), ["whsec_!!not base64!!", "whsec_ünï"], now=NOW)


def test_standard_webhooks_event() -> None:
    body = b'{"type": "invoice.paid", "timestamp": "2025-01-02T03:04:05Z", "data": {"id": "inv_1"}}'
    (event,) = SalesforceScheme().events(request(sign_standard(whsec_secret(), body, NOW), body=body))
    assert (event.event_id, event.event_type) == (STANDARD_ID, "invoice.paid")
    assert (event.account_id, event.resource_id, event.occurred_at) == (None, None, "2025-01-02T03:04:05Z")
    assert event.payload == json.loads(body)


def test_standard_webhooks_event_without_type_is_unknown() -> None:
    (event,) = StandardWebhooksScheme().events(request(sign_standard(whsec_secret(), b"{}", NOW), body=b"{}"))
    assert event.event_type == "unknown"


@pytest.mark.parametrize("body", [b"", b"{", b"[]", b"null"])
def test_standard_webhooks_malformed_payload(body: bytes) -> None:
    with pytest.raises(MalformedPayload):
        StandardWebhooksScheme().events(request(sign_standard(whsec_secret(), body, NOW), body=body))


# --- registry ---

@pytest.mark.parametrize("name", ["xero", "hubspot", "shopify", "asana", "salesforce", "custom"])
def test_registry_returns_the_scheme_for_each_provider(name: str) -> None:
    scheme = get_scheme(name)
    assert scheme is SCHEMES[name]
    assert scheme.provider == name


def test_registry_has_exactly_the_known_providers() -> None:
    assert set(SCHEMES) == {"xero", "hubspot", "shopify", "asana", "salesforce", "custom"}


@pytest.mark.parametrize("name", ["stripe", "", "XERO", None])
def test_unknown_provider(name: object) -> None:
    with pytest.raises(UnknownProvider):
        get_scheme(name)
    with pytest.raises(KeyError):
        get_scheme(name)


def test_dedup_horizons() -> None:
    hours = {name: scheme.dedup_horizon.total_seconds() / 3600 for name, scheme in SCHEMES.items()}
    assert hours == {"xero": 24, "hubspot": 24, "shopify": 24, "asana": 24, "salesforce": 24, "custom": 24}
