"""The first run, without a browser, on the dev stack's pieces: a real simulator server, the real API served over
HTTP, a real Celery worker and the outbound consumer. Connect Xero and HubSpot through the simulators' consent,
enable `xero-invoice-paid-to-hubspot`, `send_test_event("xero", "invoice.paid")`: the simulator pays an invoice
and sends Xero's signed webhook, the job completes and the customer's HubSpot deal has moved. A tampered or
wrongly signed delivery is a 401 problem and keeps nothing; another tenant cannot send through this connection."""
from __future__ import annotations

import base64
import dataclasses
import os
import secrets
import threading
import time
import uuid
from urllib.parse import urlsplit

import pytest
import requests
from celery.contrib.testing.worker import start_worker
from sqlalchemy import delete, func, select
from werkzeug.serving import make_server

import workers.jobs  # noqa: F401  (registers the tasks)
from core import bootstrap
from core.connections.errors import ConnectionNotFound
from core.inbound import listener
from core.inbound.models import InboundEvent
from core.jobs.models import Job
from core.outbound import queues
from core.platform import aws
from core.platform.actors import Actor
from core.platform.queue import celery_app
from core.tenants import service as tenants
from devstack.test_events import NoConnectionForTestEvent, UnknownTestEvent, send_test_event
from sandbox import Simulator, signing
from tenancy import routecache
from tenancy.apikeys import tenant_ref
from tenancy.context import tenant_context
from tenancy.db import catalog_transaction, tenant_session
from tenancy.models import AccountIndex
from tests.conftest import unique_slug

PROVIDERS = ("xero", "hubspot")  # the outbound queues the flagship workflow writes through
APPS = {p: (f"zixly-{p}-client", f"zixly-{p}-secret-{uuid.uuid4().hex}")
        for p in (*PROVIDERS, "shopify", "asana", "salesforce")}
XERO_WEBHOOK_KEY = base64.b64encode(secrets.token_bytes(48)).decode()


@pytest.fixture(scope="module")
def api_url(app):
    """The API app served over HTTP on loopback, as gunicorn serves it under `make run`."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def sim(api_url):
    simulator = Simulator(poll_interval=0.02).start()
    for provider, (client_id, secret) in APPS.items():
        simulator.register_app(provider, client_id, secret, [f"{api_url}/v1/oauth/callback"],
                               webhook_key=XERO_WEBHOOK_KEY if provider == "xero" else None)
    yield simulator
    simulator.stop()


@pytest.fixture(scope="module")
def dev_settings(app, settings, servers, sim, api_url):
    """What `zixly dev` configures: the simulators, the public URL, the app-level webhook secrets (Xero's webhooks
    key; HubSpot signs with the app's client secret), and outbound queues (of this run only)."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(name, servers.get(name, "testing"))
    prefix = f"fr{os.getpid()}{secrets.token_hex(3)}"
    local = dataclasses.replace(settings, provider_simulator_url=sim.url, provider_credentials=dict(APPS),
                                public_base_url=api_url, outbound_queue_prefix=prefix,
                                app_webhook_secrets={"xero": (XERO_WEBHOOK_KEY,), "hubspot": (APPS["hubspot"][1],),
                                                     "shopify": (APPS["shopify"][1],)},
                                outbound_quotas={"hubspot": "1000/1", "xero": "1000/1"})
    bootstrap.init(local)
    aws.ensure_outbound_queues(queues.sqs_client(), prefix=prefix, providers=PROVIDERS, visibility=3, max_receive=3)
    yield local
    bootstrap.init(settings)


@pytest.fixture(scope="module")
def running(dev_settings):
    """The worker (Celery, on the real Redis broker), the inbox processor (`zixly inbox`: webhooks are kept raw
    and fanned out behind the answer) and the outbound consumer, as `make run` runs them."""
    from workers.consumer import Config, Consumer

    consumer = Consumer(Config(threads=2, wait_seconds=1, retry_base=0.5, sweep_seconds=0.5, heartbeat_seconds=0.5,
                               providers=PROVIDERS)).start()
    inbox = listener.InboxListener().start()
    with start_worker(celery_app, pool="threads", concurrency=2, perform_ping_check=False, shutdown_timeout=10):
        yield
    inbox.stop()
    consumer.stop()


class Admin:
    """A tenant admin with a browser: a cookie jar (the consent is bound to it) and the tenant's API key."""

    def __init__(self, api_url: str, prefix: str):
        row, _, key = tenants.create_tenant(slug=unique_slug(prefix), name=f"{prefix} Ltd", plan="pro",
                                            actor=Actor("staff", "pytest"))
        self.row, self.ref, self.slug, self.base = row, tenant_ref(row), row.slug, api_url
        self.browser = requests.Session()
        self.browser.headers["X-API-Key"] = key

    def call(self, method: str, path: str, **kwargs) -> requests.Response:
        return self.browser.request(method, f"{self.base}{path}", timeout=15, **kwargs)

    def connect(self, provider: str, **options) -> dict:
        created = self.call("POST", "/v1/connections", json={"provider": provider, "name": f"{provider} main",
                                                              "options": options})
        assert created.status_code == 201, created.text
        consent = requests.get(created.json()["authorize_url"], allow_redirects=False, timeout=10)
        assert consent.status_code == 302, consent.text
        callback = consent.headers["Location"]
        assert urlsplit(callback).path == "/v1/oauth/callback"
        answer = self.browser.get(callback, timeout=15)
        assert answer.status_code == 200, answer.text
        conn = answer.json()["connection"]
        if conn["status"] == "select_account":  # Xero: the user consented to several organisations
            picked = self.call("PATCH", f"/v1/connections/{conn['id']}",
                               json={"account_id": conn["accounts"][0]["account_id"]})
            assert picked.status_code == 200, picked.text
            conn = picked.json()
        assert conn["status"] == "active", conn
        return conn

    def release_accounts(self) -> None:
        with catalog_transaction() as session:  # the simulators' fixed accounts are free for other tests
            session.execute(delete(AccountIndex).where(AccountIndex.tenant_id == self.row.id))
        routecache.forget_all()  # and their webhooks route to whoever connects them next, at once


@pytest.fixture()
def admin(running, api_url):
    handle = Admin(api_url, "first")
    yield handle
    handle.release_accounts()


def wait_for_job(admin: Admin, workflow: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    job = None
    while time.monotonic() < deadline:
        listed = admin.call("GET", "/v1/jobs", params={"workflow": workflow}).json().get("items") or []
        job = listed[0] if listed else None
        if job and job["status"] in ("COMPLETED", "FAILED", "CANCELLED"):
            return admin.call("GET", f"/v1/jobs/{job['id']}").json()
        time.sleep(0.2)
    raise AssertionError(f"no finished {workflow} job within {timeout} s: {job}")


def wait_until(check, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()


def count(admin: Admin, model, *where) -> int:
    with tenant_context(admin.ref), tenant_session() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


def test_a_paid_invoice_sent_by_the_simulated_xero_moves_the_hubspot_deal(admin, sim):
    xero, hubspot = admin.connect("xero"), admin.connect("hubspot")
    enabled = admin.call("PUT", "/v1/workflows/xero-invoice-paid-to-hubspot", json={
        "enabled": True, "connections": {"source": xero["id"], "target": hubspot["id"]}})
    assert enabled.status_code == 200, enabled.text

    sent = send_test_event("xero", "invoice.paid", tenant_slug=admin.slug)

    assert sent["status"] == 200 and sent["delivered"] and sent["connection_id"] == xero["id"]
    assert sent["account"] == xero["account_id"] and sent["changed"]["status"] == "PAID"
    job = wait_for_job(admin, "xero-invoice-paid-to-hubspot")
    assert job["status"] == "COMPLETED", job
    invoice = sim.provider("xero").organisations[xero["account_id"]].invoices[sent["resource_id"]]
    assert job["result"]["invoice"] == invoice["InvoiceNumber"] and job["result"]["stage"] == "closedwon"
    deal = sim.provider("hubspot").deals[job["result"]["deal"]]
    assert deal["properties"]["dealstage"] == "closedwon"  # the seeded customer's deal, moved in the simulator
    assert deal["properties"]["dealname"] == f"{invoice['Contact']['Name']} renewal"
    touched = {(r["system"], r["record_type"], r["action"]) for r in job["related_records"]}
    assert {("xero", "invoice", "read"), ("hubspot", "deal", "updated"), ("hubspot", "note", "created")} <= touched
    # echo is opt-in: the webhook started the one workflow enabled for it, nothing else
    assert count(admin, Job) == 1 and count(admin, InboundEvent) == 1


def test_a_tampered_or_wrongly_signed_delivery_is_a_401_problem_and_keeps_nothing(admin, api_url):
    xero = admin.connect("xero")
    body = {"events": [{"resourceUrl": "https://api.xero.com/api.xro/2.0/Invoices/x", "resourceId": str(uuid.uuid4()),
                        "eventDateUtc": "2026-12-03T10:00:00.000", "eventType": "UPDATE", "eventCategory": "INVOICE",
                        "tenantId": xero["account_id"], "tenantType": "ORGANISATION"}],
            "firstEventSequence": 1, "lastEventSequence": 1, "entropy": "ABCDEFGHIJKLMNOPQRST"}
    url = f"{api_url}/v1/hooks/apps/xero"
    raw, headers = signing.sign("xero", url, body, XERO_WEBHOOK_KEY)
    tampered = raw.replace(b'"firstEventSequence":1', b'"firstEventSequence":2')
    _, wrong = signing.sign("xero", url, body, "not-the-webhooks-key")
    for data, signed in ((tampered, headers), (raw, wrong), (raw, {"Content-Type": "application/json"})):
        answer = requests.post(url, data=data, headers=signed, timeout=10)
        assert answer.status_code == 401 and answer.headers["Content-Type"] == "application/problem+json"
        assert answer.json()["status"] == 401
    assert count(admin, InboundEvent) == 0
    assert requests.post(url, data=raw, headers=headers, timeout=10).status_code == 200  # the genuine one
    assert wait_until(lambda: count(admin, InboundEvent) == 1)  # kept raw, fanned out behind the answer


def test_test_events_reach_only_the_tenants_own_connections(admin, api_url):
    xero = admin.connect("xero")
    other = Admin(api_url, "other")
    with pytest.raises(NoConnectionForTestEvent):  # tenant B has no Xero connection: nothing is sent
        send_test_event("xero", "invoice.paid", tenant_slug=other.slug)
    with pytest.raises(ConnectionNotFound):  # and cannot name tenant A's
        send_test_event("xero", "invoice.paid", tenant_slug=other.slug, connection_id=xero["id"])
    with pytest.raises(UnknownTestEvent):
        send_test_event("xero", "invoice.deleted", tenant_slug=admin.slug)
    assert count(admin, InboundEvent) == 0 and count(other, InboundEvent) == 0


@pytest.mark.parametrize("provider, event, options", [
    ("hubspot", "deal.won", {}), ("shopify", "orders/create", {"shop": "zixly-demo.myshopify.com"}),
    ("asana", "task.completed", {})])
def test_other_test_events_are_verified_kept_and_start_what_is_enabled(admin, sim, provider, event, options):
    conn = admin.connect(provider, **options)
    echo = admin.call("PUT", "/v1/workflows/echo", json={"enabled": True, "event_types": ["*"]})
    assert echo.status_code == 200, echo.text

    sent = send_test_event(provider, event, tenant_slug=admin.slug)

    assert sent["status"] == 200 and sent["delivered"] and sent["connection_id"] == conn["id"]
    if provider == "shopify":  # the connection's own endpoint names the events it kept
        assert sent["received"] == 1
        assert int(sent["resource_id"]) in sim.provider("shopify").orders["zixly-demo.myshopify.com"]
    elif provider == "asana":  # Asana shook hands with the connection's endpoint first: its secret signs
        assert sent["received"] == 1 and sim.provider("asana").tasks[sent["resource_id"]]["completed"]
        conn_view = admin.call("GET", f"/v1/connections/{conn['id']}").json()
        assert len(conn_view["webhook"]["secrets"]) == 1
    else:
        assert sim.provider("hubspot").deals[sent["resource_id"]]["properties"]["dealstage"] == "closedwon"
    assert wait_for_job(admin, "echo")["status"] == "COMPLETED"
    assert count(admin, InboundEvent) == 1


def test_a_salesforce_test_event_needs_the_connection_s_secret_which_the_sender_then_signs_with(admin, sim):
    conn = admin.connect("salesforce", login_url="https://login.salesforce.com")
    with pytest.raises(NoConnectionForTestEvent, match="no webhook secret yet"):  # nothing to configure the sender
        send_test_event("salesforce", "invoice.paid", tenant_slug=admin.slug)
    added = admin.call("POST", f"/v1/connections/{conn['id']}/webhook/secrets", json={})
    assert added.status_code == 201, added.text
    assert admin.call("PUT", "/v1/workflows/echo", json={"enabled": True, "event_types": ["invoice.paid"]}).ok

    sent = send_test_event("salesforce", "invoice.paid", tenant_slug=admin.slug)

    assert sent["status"] == 200 and sent["received"] == 1
    assert sim.provider("salesforce").records["rtms__CustomerInvoice__c"][sent["resource_id"]][
        "rtms__Status__c"] == "Paid"
    assert wait_for_job(admin, "echo")["status"] == "COMPLETED"
