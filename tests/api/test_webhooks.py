"""Inbound webhooks end to end: signed deliveries stored durably, duplicates once, routing by account/token."""
import base64
import hashlib
import hmac
import json
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from core import bootstrap
from core.connections import store
from core.inbound.models import InboundEvent
from core.jobs.models import Job
from tenancy.context import tenant_context
from tenancy.db import tenant_session

XERO_KEY = "xero-app-key-" + "k" * 40
SHOPIFY_SECRET = "shpss_app_secret"
APP_SECRETS = {"xero": ("old-" + XERO_KEY, XERO_KEY), "shopify": (SHOPIFY_SECRET,), "hubspot": ("hs-secret",)}


@pytest.fixture(scope="module", autouse=True)
def app_secrets(app, settings):
    import dataclasses

    bootstrap.init(dataclasses.replace(settings, app_webhook_secrets=APP_SECRETS))
    yield
    bootstrap.init(settings)


def b64hmac(secret, body):
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def xero_body(*events):
    return json.dumps({"events": list(events), "firstEventSequence": 1, "lastEventSequence": len(events),
                       "entropy": "ABC"}).encode()


def xero_event(tenant_id, resource_id=None, when="2026-11-25T10:00:00.000"):
    return {"resourceUrl": "https://api.xero.com/api.xro/2.0/Invoices/x",
            "resourceId": resource_id or str(uuid.uuid4()),
            "eventDateUtc": when, "eventType": "UPDATE", "eventCategory": "INVOICE", "tenantId": tenant_id,
            "tenantType": "ORGANISATION"}


def connect(t, provider, account_id=None, secrets=()):
    with tenant_context(t.ref):
        return store.create_connection(provider=provider, account_id=account_id, webhook_secrets=list(secrets))


def count(t, model):
    with tenant_context(t.ref), tenant_session() as s:
        return s.scalar(select(func.count()).select_from(model))


def enable_echo(client, t, event_types=("*",)):
    """Opt the tenant in to `echo` (off by default): one job per event, to count what an event starts."""
    r = client.put("/v1/workflows/echo", json={"enabled": True, "event_types": list(event_types)}, headers=t.headers)
    assert r.status_code == 200, r.get_json()


def post_xero(client, body, key=XERO_KEY):
    return client.post("/v1/hooks/apps/xero", data=body, headers={"x-xero-signature": b64hmac(key, body),
                                                                   "Content-Type": "application/json"})


def test_xero_intent_to_receive(client):
    body = xero_body()
    r = post_xero(client, body)
    assert r.status_code == 200 and r.data == b""
    assert "Content-Type" not in r.headers and "Set-Cookie" not in r.headers and r.headers["X-Request-ID"]
    r = post_xero(client, body, key="wrong")
    assert r.status_code == 401


def test_the_spec_says_what_a_hook_200_is(client):
    """A 200 is a HookReceipt (JSON), except Xero's, which is empty as Xero requires; the spec says exactly that."""
    spec = client.get("/openapi.json").get_json()
    for path in ("/v1/hooks/apps/{provider}", "/v1/hooks/{token}"):
        ok = spec["paths"][path]["post"]["responses"]["200"]
        assert list(ok["content"]) == ["application/json"]
        assert ok["content"]["application/json"]["schema"]["$ref"].endswith("/HookReceipt")
        assert "Xero" in ok["description"] and "no body" in ok["description"] and "Content-Type" in ok["description"]
    receipt = set(spec["components"]["schemas"]["HookReceipt"]["properties"])
    r = post_xero(client, xero_body())
    assert r.status_code == 200 and r.data == b"" and "Content-Type" not in r.headers
    body = json.dumps({"id": 1, "myshopify_domain": "spec-check.myshopify.com", "updated_at": shopify_now()}).encode()
    r = client.post("/v1/hooks/apps/shopify", data=body, headers=shopify_headers(body, "shop/update"))
    assert r.status_code == 200 and r.content_type == "application/json"
    assert set(r.get_json()) <= receipt and {"received", "duplicates", "dropped"} <= set(r.get_json())


def test_xero_delivery_routes_each_event_to_its_tenant(client, make_tenant):
    a, b = make_tenant("xa"), make_tenant("xb")
    org_a, org_b = str(uuid.uuid4()), str(uuid.uuid4())
    connect(a, "xero", org_a)
    connect(b, "xero", org_b)
    enable_echo(client, a)
    enable_echo(client, b)
    body = xero_body(xero_event(org_a), xero_event(org_b), xero_event(org_b), xero_event(str(uuid.uuid4())))
    r = post_xero(client, body)
    assert r.status_code == 200
    assert count(a, InboundEvent) == 1 and count(b, InboundEvent) == 2
    assert count(a, Job) == 1 and count(b, Job) == 2  # each tenant opted in to echo for every event type
    with tenant_context(b.ref), tenant_session() as s:
        assert all(e.raw_body is None for e in s.scalars(select(InboundEvent)))  # body carried A's event too
    # redelivery: same events, nothing new, no second job
    assert post_xero(client, body).status_code == 200
    assert count(a, InboundEvent) == 1 and count(b, InboundEvent) == 2 and count(b, Job) == 2


def test_rotated_app_secret_both_accepted(client, make_tenant):
    t = make_tenant()
    org = str(uuid.uuid4())
    connect(t, "xero", org)
    assert post_xero(client, xero_body(xero_event(org)), key="old-" + XERO_KEY).status_code == 200
    assert post_xero(client, xero_body(xero_event(org)), key=XERO_KEY).status_code == 200
    assert count(t, InboundEvent) == 2


def test_bad_signature_stores_nothing(client, make_tenant):
    t = make_tenant()
    org = str(uuid.uuid4())
    connect(t, "xero", org)
    body = xero_body(xero_event(org))
    tampered = body.replace(b"UPDATE", b"DELETE")
    r = client.post("/v1/hooks/apps/xero", data=tampered,
                    headers={"x-xero-signature": b64hmac(XERO_KEY, body), "Content-Type": "application/json"})
    assert r.status_code == 401 and r.content_type == "application/problem+json"
    r = client.post("/v1/hooks/apps/xero", data=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 401
    assert count(t, InboundEvent) == 0


def shopify_now(offset_seconds: float = 0) -> str:
    """A Shopify-style timestamp (ISO 8601 with an offset) relative to now, never a fixed date."""
    return datetime.fromtimestamp(time.time() + offset_seconds, timezone(timedelta(hours=-5))).isoformat()


def shopify_headers(body, topic, *, shop="unsigned.myshopify.com", secret=SHOPIFY_SECRET):
    return {"X-Shopify-Hmac-Sha256": b64hmac(secret, body), "X-Shopify-Topic": topic,
            "X-Shopify-Shop-Domain": shop, "X-Shopify-Webhook-Id": str(uuid.uuid4()),
            "Content-Type": "application/json"}


def test_shopify_replay_with_a_fresh_webhook_id_is_a_duplicate(client, make_tenant):
    """De-duplication is on the signed body: the same order delivered again with a new X-Shopify-Webhook-Id (a
    replay of a captured delivery) is a duplicate and starts nothing again."""
    t = make_tenant()
    _, token = connect(t, "shopify", f"{t.slug}.myshopify.com")  # Zixly's app secret signs it (no own secret)
    enable_echo(client, t)
    body = json.dumps({"id": 820982911946154508, "email": "jon@example.com", "updated_at": shopify_now()}).encode()
    first = client.post(f"/v1/hooks/{token}", data=body, headers=shopify_headers(body, "orders/create"))
    replay = client.post(f"/v1/hooks/{token}", data=body, headers=shopify_headers(body, "orders/create"))
    assert first.status_code == replay.status_code == 200, replay.get_json()
    assert replay.get_json()["duplicates"] == 1 and replay.get_json()["events"] == first.get_json()["events"]
    assert count(t, InboundEvent) == 1 and count(t, Job) == 1


def test_shopify_order_at_the_app_level_url_is_refused_whatever_shop_the_header_names(client, make_tenant):
    """An order body names no shop and the X-Shopify-Shop-Domain header is not signed: the app-level URL cannot
    route it (a captured order of shop A re-sent naming shop B would land in B's tenant), so it is a 422 problem
    that points at the connection's own endpoint, and nothing is stored anywhere."""
    a, b = make_tenant("shopa"), make_tenant("shopb")
    connect(a, "shopify", f"{a.slug}.myshopify.com")
    connect(b, "shopify", f"{b.slug}.myshopify.com")
    body = json.dumps({"id": 1001, "email": "ann@example.com", "updated_at": shopify_now()}).encode()
    for shop in (a.slug, b.slug):
        r = client.post("/v1/hooks/apps/shopify", data=body,
                        headers=shopify_headers(body, "orders/create", shop=f"{shop}.myshopify.com"))
        assert r.status_code == 422 and r.content_type == "application/problem+json"
        assert r.get_json()["type"].endswith("/app-hook-unroutable") and "/v1/hooks/{endpoint_token}" in r.get_json()[
            "detail"]
    assert count(a, InboundEvent) == 0 and count(b, InboundEvent) == 0


def test_shopify_app_level_routes_by_the_shop_in_the_signed_body(client, make_tenant):
    """shop/update names its shop in the body: it reaches that shop's tenant even when the header names another."""
    a, b = make_tenant("shopra"), make_tenant("shoprb")
    connect(a, "shopify", f"{a.slug}.myshopify.com")
    connect(b, "shopify", f"{b.slug}.myshopify.com")
    body = json.dumps({"id": 7, "myshopify_domain": f"{a.slug}.myshopify.com", "updated_at": shopify_now()}).encode()
    r = client.post("/v1/hooks/apps/shopify", data=body,
                    headers=shopify_headers(body, "shop/update", shop=f"{b.slug}.myshopify.com"))
    assert r.status_code == 200 and r.get_json()["received"] == 1
    assert count(a, InboundEvent) == 1 and count(b, InboundEvent) == 0


def test_shopify_replay_of_an_old_delivery_is_refused(client, make_tenant):
    """A captured delivery replayed more than a day after its signed updated_at: 401, nothing stored."""
    t = make_tenant()
    _, token = connect(t, "shopify", f"{t.slug}.myshopify.com")
    old = json.dumps({"id": 1002, "updated_at": shopify_now(-25 * 3600)}).encode()
    r = client.post(f"/v1/hooks/{token}", data=old, headers=shopify_headers(old, "orders/create"))
    assert r.status_code == 401 and r.content_type == "application/problem+json"
    recent = json.dumps({"id": 1002, "updated_at": shopify_now(-23 * 3600)}).encode()
    assert client.post(f"/v1/hooks/{token}", data=recent,
                       headers=shopify_headers(recent, "orders/create")).status_code == 200
    assert count(t, InboundEvent) == 1


def test_a_connection_endpoint_drops_an_event_naming_another_shop(client, make_tenant):
    """Shopify signs every shop's deliveries with Zixly's one app secret: a shop/update of shop B sent to A's
    endpoint (a leaked token) is verified, but it names B, so A keeps nothing."""
    a, b = make_tenant("shopxa"), make_tenant("shopxb")
    _, token = connect(a, "shopify", f"{a.slug}.myshopify.com")
    connect(b, "shopify", f"{b.slug}.myshopify.com")
    body = json.dumps({"id": 8, "myshopify_domain": f"{b.slug}.myshopify.com", "updated_at": shopify_now()}).encode()
    r = client.post(f"/v1/hooks/{token}", data=body, headers=shopify_headers(body, "shop/update"))
    assert r.status_code == 200 and r.get_json()["received"] == 0 and r.get_json()["dropped"] == 1
    assert count(a, InboundEvent) == 0 and count(b, InboundEvent) == 0


def test_connection_hook_standard_webhooks(client, make_tenant):
    a, b = make_tenant("sa"), make_tenant("sb")
    raw = b"0123456789abcdef0123456789abcdef"
    secret = "whsec_" + base64.b64encode(raw).decode()
    _, token = connect(a, "custom", secrets=[secret])
    body = json.dumps({"type": "invoice.paid", "timestamp": "2026-11-25T10:00:00Z", "data": {"id": "inv_1"}}).encode()
    msg_id, ts = "msg_" + uuid.uuid4().hex, str(int(time.time()))
    sig = base64.b64encode(hmac.new(raw, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()).decode()
    headers = {"webhook-id": msg_id, "webhook-timestamp": ts, "webhook-signature": f"v1,{sig}",
               "Content-Type": "application/json"}
    r = client.post(f"/v1/hooks/{token}", data=body, headers=headers)
    assert r.status_code == 200, r.get_json()
    event_id = r.get_json()["events"][0]
    again = client.post(f"/v1/hooks/{token}", data=body, headers=headers)
    assert again.get_json()["events"] == [event_id] and again.get_json()["duplicates"] == 1
    got = client.get(f"/v1/events/{event_id}", headers=a.headers).get_json()
    assert got["event_type"] == "invoice.paid" and got["payload"]["data"] == {"id": "inv_1"}
    assert count(b, InboundEvent) == 0  # A's token never writes into B
    assert client.get(f"/v1/events/{event_id}", headers=b.headers).status_code == 404
    assert client.post(f"/v1/events/{event_id}/replay", headers=b.headers).status_code == 404
    stale = dict(headers, **{"webhook-timestamp": str(int(time.time()) - 3600)})
    assert client.post(f"/v1/hooks/{token}", data=body, headers=stale).status_code == 401


def test_unknown_token_is_404_and_touches_nothing(client):
    r = client.post("/v1/hooks/wh_doesnotexist", data=b"{}", headers={"Content-Type": "application/json"})
    assert r.status_code == 404 and r.content_type == "application/problem+json"
    assert client.post("/v1/hooks/apps/myspace", data=b"{}").status_code == 404


def test_asana_handshake_then_signed_delivery(client, make_tenant):
    t = make_tenant()
    _, token = connect(t, "asana")
    r = client.post(f"/v1/hooks/{token}", data=b"", headers={"X-Hook-Secret": "asana-secret-1"})
    assert r.status_code == 200 and r.headers["X-Hook-Secret"] == "asana-secret-1"
    # a second handshake (anyone who knows the URL) cannot add a secret of its own
    assert client.post(f"/v1/hooks/{token}", data=b"", headers={"X-Hook-Secret": "attacker"}).status_code == 401
    body = json.dumps({"events": [{"user": {"gid": "1"}, "created_at": "2026-11-25T10:00:00.000Z",
                                   "action": "added", "resource": {"gid": "42", "resource_type": "task"},
                                   "parent": None}]}).encode()
    sig = hmac.new(b"asana-secret-1", body, hashlib.sha256).hexdigest()
    r = client.post(f"/v1/hooks/{token}", data=body, headers={"X-Hook-Signature": sig,
                                                              "Content-Type": "application/json"})
    assert r.status_code == 200 and r.get_json()["received"] == 1
    r = client.post(f"/v1/hooks/{token}", data=body, headers={"X-Hook-Signature": "0" * 64,
                                                              "Content-Type": "application/json"})
    assert r.status_code == 401


def test_oversized_webhook_is_413(client, app):
    body = b"{" + b" " * app.config["MAX_CONTENT_LENGTH"] + b"}"
    r = client.post("/v1/hooks/apps/xero", data=body, headers={"x-xero-signature": b64hmac(XERO_KEY, body)})
    assert r.status_code == 413


def test_events_list_and_replay(client, make_tenant):
    t = make_tenant()
    org = str(uuid.uuid4())
    connect(t, "xero", org)
    enable_echo(client, t)
    post_xero(client, xero_body(xero_event(org), xero_event(org)))
    items = client.get("/v1/events", headers=t.headers).get_json()["items"]
    assert len(items) == 2 and all(e["provider"] == "xero" for e in items)
    r = client.post(f"/v1/events/{items[0]['id']}/replay", headers=t.headers)
    assert r.status_code == 202 and len(r.get_json()["jobs"]) == 1
    assert count(t, Job) == 3
    assert client.get("/v1/events/not-an-id", headers=t.headers).status_code == 404
    assert client.get("/v1/events?status=bogus", headers=t.headers).status_code == 422


def test_hubspot_v3_signed_over_the_public_url(client, make_tenant, app):
    t = make_tenant()
    portal = str(int(time.time() * 1000) % 10**9)
    connect(t, "hubspot", portal)
    body = json.dumps([{"eventId": int(time.time() * 1000), "subscriptionId": 1, "portalId": int(portal),
                        "appId": 7, "occurredAt": int(time.time() * 1000), "subscriptionType": "deal.propertyChange",
                        "attemptNumber": 0, "objectId": 99, "propertyName": "dealstage",
                        "propertyValue": "closedwon"}]).encode()
    app.config["PUBLIC_BASE_URL"] = "https://hooks.zixly.example"
    try:
        ts = str(int(time.time() * 1000))
        uri = "https://hooks.zixly.example/v1/hooks/apps/hubspot"
        sig = b64hmac("hs-secret", b"POST" + uri.encode() + body + ts.encode())
        headers = {"X-HubSpot-Signature-v3": sig, "X-HubSpot-Request-Timestamp": ts,
                   "Content-Type": "application/json"}
        r = client.post("/v1/hooks/apps/hubspot", data=body, headers=headers)
        assert r.status_code == 200 and r.get_json()["received"] == 1, r.get_json()
        old = str(int(time.time() * 1000) - 10 * 60 * 1000)
        stale = b64hmac("hs-secret", b"POST" + uri.encode() + body + old.encode())
        r = client.post("/v1/hooks/apps/hubspot", data=body,
                        headers={**headers, "X-HubSpot-Signature-v3": stale, "X-HubSpot-Request-Timestamp": old})
        assert r.status_code == 401
    finally:
        app.config["PUBLIC_BASE_URL"] = None
    assert count(t, InboundEvent) == 1


def test_signed_delivery_with_unstorable_json_is_422_and_stores_nothing(client, make_tenant):
    t = make_tenant()
    raw = b"k" * 32
    _, token = connect(t, "custom", secrets=["whsec_" + base64.b64encode(raw).decode()])
    body = b'{"type": "x", "data": {"note": "a\\u0000b"}}'
    msg_id, ts = "msg_nul", str(int(time.time()))
    sig = base64.b64encode(hmac.new(raw, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()).decode()
    r = client.post(f"/v1/hooks/{token}", data=body, headers={"webhook-id": msg_id, "webhook-timestamp": ts,
                                                             "webhook-signature": f"v1,{sig}"})
    assert r.status_code == 422 and r.content_type == "application/problem+json"
    assert count(t, InboundEvent) == 0 and count(t, Job) == 0


def test_event_lists_are_per_tenant(client, make_tenant):
    a, b = make_tenant("la"), make_tenant("lb")
    org = str(uuid.uuid4())
    connect(a, "xero", org)
    post_xero(client, xero_body(xero_event(org)))
    assert len(client.get("/v1/events", headers=a.headers).get_json()["items"]) == 1
    assert client.get("/v1/events", headers=b.headers).get_json()["items"] == []
    assert client.get("/v1/jobs", headers=b.headers).get_json()["items"] == []


def _unrouted(provider="xero") -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value("zixly_webhooks_unrouted_total", {"provider": provider}) or 0.0


def test_a_route_a_moment_behind_never_stores_into_a_deleted_connection(client, make_tenant):
    """Routes are remembered for up to 2 s per process (tenancy.routecache); another process may still hold
    one for a connection deleted here. The tenant's own insert checks the connection: the event is dropped."""
    from tenancy import routecache

    a, org = make_tenant("xstale"), str(uuid.uuid4())
    conn, _ = connect(a, "xero", org)
    enable_echo(client, a)
    assert post_xero(client, xero_body(xero_event(org))).status_code == 200
    stale = routecache.lookup(("account", "xero", org))
    assert stale is not None and stale[1] == conn.id
    with tenant_context(a.ref):
        store.delete_connection(conn.id)
    assert routecache.lookup(("account", "xero", org)) is None  # this process forgot it at once
    routecache.remember(("account", "xero", org), stale)  # as another process still has it
    before = _unrouted()
    assert post_xero(client, xero_body(xero_event(org))).status_code == 200
    assert count(a, InboundEvent) == 1 and count(a, Job) == 1
    assert _unrouted() == before + 1


def test_a_route_to_a_schema_that_moved_away_is_a_503_and_stores_nothing(client, make_tenant):
    """A tenant moved (or archived) a moment ago: a stale route points at a schema that is no longer there.
    The provider gets 503 with Retry-After (it retries; the inbox de-duplicates), not a 500."""
    import dataclasses

    from tenancy import routecache

    a, org = make_tenant("xmoved"), str(uuid.uuid4())
    conn, _ = connect(a, "xero", org)
    gone = dataclasses.replace(a.ref, schema=a.ref.schema + "_moved_away")
    routecache.remember(("account", "xero", org), (gone, conn.id))
    try:
        r = post_xero(client, xero_body(xero_event(org)))
    finally:
        routecache.forget_all()
    assert r.status_code == 503 and r.content_type == "application/problem+json"
    assert r.headers["Retry-After"] == "1"
    assert count(a, InboundEvent) == 0


def test_published_outbox_rows_are_deleted_after_the_answer(client, make_tenant):
    """The request commits once; the rows of the messages it published are deleted in a batch afterwards."""
    from core.platform import outbox
    from core.platform.models import OutboxMessage

    a, org = make_tenant("xbox"), str(uuid.uuid4())
    connect(a, "xero", org)
    enable_echo(client, a)
    for _ in range(3):
        assert post_xero(client, xero_body(xero_event(org))).status_code == 200
    outbox.flush_published()  # what the process's sweeper thread does every 0.2 s
    assert count(a, Job) == 3 and count(a, OutboxMessage) == 0


def test_events_for_a_tenant_being_moved_get_503_and_come_again(client, make_tenant):
    """A move suspends the tenant for a few seconds: its events are not acknowledged and dropped (lost) but
    refused with 503 and Retry-After, so the provider delivers them again; a staff suspension is unchanged."""
    from sqlalchemy import update

    from tenancy import routecache
    from tenancy.db import catalog_transaction
    from tenancy.models import Tenant, TenantMove

    a, org = make_tenant("xmove"), str(uuid.uuid4())
    raw = b"0123456789abcdef0123456789abcdef"
    secret = "whsec_" + base64.b64encode(raw).decode()
    connect(a, "xero", org)
    _, token = connect(a, "custom", secrets=[secret])
    enable_echo(client, a)
    body = json.dumps({"type": "invoice.paid", "data": {"id": "inv_9"}}).encode()
    msg_id, ts = "msg_" + uuid.uuid4().hex, str(int(time.time()))
    sig = base64.b64encode(hmac.new(raw, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()).decode()
    signed = {"webhook-id": msg_id, "webhook-timestamp": ts, "webhook-signature": f"v1,{sig}",
              "Content-Type": "application/json"}
    delivery = xero_body(xero_event(org))

    def set_state(status, moving):
        with catalog_transaction() as session:
            session.execute(update(Tenant).where(Tenant.id == a.ref.id).values(status=status))
            if moving:
                session.add(TenantMove(tenant_id=a.ref.id, from_shard=a.ref.shard, to_shard=a.ref.shard,
                                       status="copying", previous_status="active"))
            else:
                session.execute(update(TenantMove).where(TenantMove.tenant_id == a.ref.id)
                                .values(status="failed"))
        routecache.forget_all()  # as the move itself does in this process

    from core.platform import metrics

    rejected = lambda provider: metrics.webhooks_rejected.labels(provider, "tenant-moving")._value.get()  # noqa: E731
    before = {p: rejected(p) for p in ("xero", "custom")}
    set_state("suspended", moving=True)
    for r in (post_xero(client, delivery), client.post(f"/v1/hooks/{token}", data=body, headers=signed)):
        assert r.status_code == 503 and r.content_type == "application/problem+json", r.data
        assert r.get_json()["type"].endswith("tenant-moving") and r.headers["Retry-After"] == "5"
    assert {p: rejected(p) - before[p] for p in before} == {"xero": 1, "custom": 1}  # counted by provider
    assert count(a, InboundEvent) == 0
    set_state("active", moving=False)  # moved: the provider delivers again
    assert post_xero(client, delivery).status_code == 200
    assert client.post(f"/v1/hooks/{token}", data=body, headers=signed).status_code == 200
    assert count(a, InboundEvent) == 2 and count(a, Job) == 2
    set_state("suspended", moving=False)  # suspended by staff: refused as before, not retried for a day
    assert client.post(f"/v1/hooks/{token}", data=body, headers=signed).status_code == 403


def test_an_event_starts_each_enabled_workflow_it_triggers_in_the_same_statement(client, make_tenant, monkeypatch):
    """One statement keeps the event with a job (and its outbox message) per workflow it starts; a workflow bound
    to another source connection, or disabled, starts nothing; a duplicate starts nothing again."""
    from core.platform import outbox
    from core.platform.models import OutboxMessage
    from core.workflows.models import WorkflowSetting
    from tenancy.db import tenant_transaction

    # the process's sweeper thread leaves the published rows to this test, which sweeps them itself below (a busy
    # machine must not turn the 0.2 s sweep into a race with the assertions)
    monkeypatch.setattr(outbox._published, "flush", lambda: 0)
    t = make_tenant()
    shop = f"{t.slug}.myshopify.com"
    conn, token = connect(t, "shopify", shop)
    enable_echo(client, t)
    with tenant_context(t.ref), tenant_transaction() as s:
        s.add(WorkflowSetting(name="shopify-order-to-xero-invoice", enabled=True, max_attempts=7,
                              connections={"source": str(conn.id)}))
        s.add(WorkflowSetting(name="xero-invoice-paid-to-hubspot", enabled=False))
    body = json.dumps({"id": 1001, "email": "ann@example.com"}).encode()
    headers = shopify_headers(body, "orders/create")
    for _ in range(2):
        assert client.post(f"/v1/hooks/{token}", data=body, headers=headers).status_code == 200
    with tenant_context(t.ref), tenant_session() as s:
        event = s.scalars(select(InboundEvent)).one()
        jobs = {j.workflow: j for j in s.scalars(select(Job))}
        waiting = s.scalars(select(OutboxMessage)).all()
    assert sorted(jobs) == ["echo", "shopify-order-to-xero-invoice"]
    assert [jobs["echo"].max_attempts, jobs["shopify-order-to-xero-invoice"].max_attempts] == [4, 7]
    assert all(j.event_id == event.id and j.status == "QUEUED" and j.input == {"event": event.payload}
               and j.created_by == "webhook:shopify" for j in jobs.values())
    assert sorted(m.args[0] for m in waiting) == sorted(str(j.id) for j in jobs.values())  # published, not swept yet
    outbox.flush_published()
    assert count(t, OutboxMessage) == 0

    with tenant_context(t.ref), tenant_transaction() as s:  # bound to another source: only echo starts
        s.get(WorkflowSetting, "shopify-order-to-xero-invoice").connections = {"source": str(uuid.uuid4())}
    body = json.dumps({"id": 1002}).encode()
    r = client.post(f"/v1/hooks/{token}", data=body, headers=shopify_headers(body, "orders/create"))
    assert r.status_code == 200
    assert count(t, InboundEvent) == 2 and count(t, Job) == 3


def hubspot_delivery(portal):
    return json.dumps([{"eventId": int(time.time() * 1000), "subscriptionId": 1, "portalId": int(portal), "appId": 7,
                        "occurredAt": int(time.time() * 1000), "subscriptionType": "contact.creation",
                        "attemptNumber": 0, "objectId": 5}]).encode()


def hubspot_v2_headers(body, uri):
    return {"X-HubSpot-Signature": hashlib.sha256(b"hs-secret" + b"POST" + uri.encode() + body).hexdigest(),
            "X-HubSpot-Signature-Version": "v2", "Content-Type": "application/json"}


def test_hubspot_legacy_signature_is_refused_by_default_and_cannot_downgrade_v3(client, make_tenant, app, settings):
    """A v3 delivery with its v3 headers stripped and a valid v2 signature added (v2 has no timestamp: replayable
    forever) is a 401 problem by default; only a deployment that lists v2 in ZIXLY_HUBSPOT_LEGACY_SIGNATURES
    accepts it."""
    import dataclasses

    t = make_tenant()
    portal = str(int(time.time() * 1000) % 10**9 + 1)
    connect(t, "hubspot", portal)
    body = hubspot_delivery(portal)
    uri = "https://hooks.zixly.example/v1/hooks/apps/hubspot"
    app.config["PUBLIC_BASE_URL"] = "https://hooks.zixly.example"
    try:
        r = client.post("/v1/hooks/apps/hubspot", data=body, headers=hubspot_v2_headers(body, uri))
        assert r.status_code == 401 and r.content_type == "application/problem+json"
        assert count(t, InboundEvent) == 0
        bootstrap.init(dataclasses.replace(settings, app_webhook_secrets=APP_SECRETS,
                                           hubspot_legacy_signatures=("v2",)))
        r = client.post("/v1/hooks/apps/hubspot", data=body, headers=hubspot_v2_headers(body, uri))
        assert r.status_code == 200 and r.get_json()["received"] == 1
    finally:
        bootstrap.init(dataclasses.replace(settings, app_webhook_secrets=APP_SECRETS))
        app.config["PUBLIC_BASE_URL"] = None
    assert count(t, InboundEvent) == 1


def test_echo_is_opt_in_an_event_starts_no_echo_job_until_the_tenant_enables_it(client, make_tenant):
    """A new tenant has echo disabled (migration t0008): a webhook starts nothing; once enabled for an event
    type, exactly that type starts it."""
    t = make_tenant()
    org = str(uuid.uuid4())
    connect(t, "xero", org)
    assert client.get("/v1/workflows/echo", headers=t.headers).get_json()["enabled"] is False
    assert post_xero(client, xero_body(xero_event(org))).status_code == 200
    assert count(t, InboundEvent) == 1 and count(t, Job) == 0
    enable_echo(client, t, event_types=["UPDATE:CONTACT"])
    assert post_xero(client, xero_body(xero_event(org))).status_code == 200  # an UPDATE:INVOICE
    assert count(t, InboundEvent) == 2 and count(t, Job) == 0
    enable_echo(client, t, event_types=["UPDATE:INVOICE"])
    assert post_xero(client, xero_body(xero_event(org))).status_code == 200
    assert count(t, InboundEvent) == 3 and count(t, Job) == 1
