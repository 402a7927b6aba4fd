"""Outbound delivery against real parts: moto's SQS server (queues of this run only, with short timings), the
provider simulators over HTTP, real OAuth connections made through the API, PostgreSQL and Redis."""
from __future__ import annotations

import dataclasses
import itertools
import json
import os
import secrets
import threading
import time
import uuid
from urllib.parse import urlsplit

import pytest
import requests
from sqlalchemy import delete

from core import bootstrap
from core.outbound import queues
from core.platform import aws, runtime
from core.platform.actors import Actor
from sandbox import Simulator
from tenancy.apikeys import tenant_ref
from tenancy.db import catalog_transaction
from tenancy.models import AccountIndex
from tests.conftest import unique_slug

BASE = "https://zixly.test"
APPS = {p: (f"zixly-{p}-client", f"zixly-{p}-secret-{uuid.uuid4().hex}") for p in ("hubspot", "xero")}
VISIBILITY = 3  # seconds a received message stays hidden (the heartbeat extends it while in hand)
MAX_RECEIVES = 3  # then SQS moves it to the dead-letter queue
PROVIDERS = ("hubspot", "xero")


@pytest.fixture(scope="package")
def sim():
    simulator = Simulator(poll_interval=0.02).start()
    for provider, (cid, secret) in APPS.items():
        simulator.register_app(provider, cid, secret, [f"{BASE}/v1/oauth/callback"])
    yield simulator
    simulator.stop()


@pytest.fixture(scope="package")
def outbound_settings(app, settings, servers, sim):
    """The suite's settings, pointed at the simulators and at queues made for this run."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):  # moto takes any; boto3 wants some
        os.environ.setdefault(name, servers.get(name, "testing"))
    prefix = f"t{os.getpid()}{secrets.token_hex(3)}"
    local = dataclasses.replace(settings, provider_simulator_url=sim.url, provider_credentials=dict(APPS),
                                public_base_url=BASE, outbound_queue_prefix=prefix,
                                outbound_quotas={"hubspot": "1000/1", "xero": "1000/1"})
    bootstrap.init(local)
    aws.ensure_outbound_queues(queues.sqs_client(), prefix=prefix, providers=PROVIDERS, visibility=VISIBILITY,
                               max_receive=MAX_RECEIVES)
    yield local
    bootstrap.init(settings)


@pytest.fixture()
def quotas(outbound_settings, monkeypatch):
    """Set providers' quotas for one test (the bucket reads them per delivery)."""
    def set_quotas(**values):
        monkeypatch.setattr(runtime, "_settings", dataclasses.replace(
            runtime.settings(), outbound_quotas={**runtime.settings().outbound_quotas, **values}))
    return set_quotas


class Tenant:
    def __init__(self, row, secret):
        self.row, self.ref, self.slug, self.headers = row, tenant_ref(row), row.slug, {"X-API-Key": secret}
        self.connections: dict[str, str] = {}


def _follow_consent(authorize_url: str) -> str:
    answer = requests.get(authorize_url, allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text
    return urlsplit(answer.headers["Location"]).query


def connect(client, tenant: Tenant, provider: str) -> str:
    r = client.post("/v1/connections", json={"provider": provider, "name": f"{provider} main"},
                    headers=tenant.headers)
    assert r.status_code == 201, r.get_json()
    r = client.get("/v1/oauth/callback?" + _follow_consent(r.get_json()["authorize_url"]))
    assert r.status_code == 200, r.get_json()
    conn = r.get_json()["connection"]
    if conn["status"] == "select_account":  # Xero: several organisations consented, pick the first
        r = client.patch(f"/v1/connections/{conn['id']}", json={"account_id": conn["accounts"][0]["account_id"]},
                         headers=tenant.headers)
        conn = r.get_json()
    assert conn["status"] == "active", conn
    return conn["id"]


@pytest.fixture(scope="package")
def tenant(app, outbound_settings):
    """One tenant with a HubSpot and a Xero connection, shared by the package's tests."""
    from core.tenants import service as tenants

    row, _, secret = tenants.create_tenant(slug=unique_slug("ob"), name="Outbound Ltd", plan="pro",
                                           actor=Actor("staff", "pytest"))
    handle = Tenant(row, secret)
    client = app.test_client()
    for provider in PROVIDERS:
        handle.connections[provider] = connect(client, handle, provider)
    yield handle
    with catalog_transaction() as session:  # the simulators' accounts are free for other tests to connect
        session.execute(delete(AccountIndex).where(AccountIndex.tenant_id == row.id))


@pytest.fixture()
def consumers(outbound_settings):
    """Start in-process consumers (each its own threads and SQS client, like separate processes would be)."""
    from workers.consumer import Config, Consumer

    started = []

    def start(count: int = 1, **options):
        config = Config(**{"threads": 2, "wait_seconds": 1, "retry_base": 0.5, "sweep_seconds": 0.5,
                           "heartbeat_seconds": 0.5, "providers": PROVIDERS, **options})
        for _ in range(count):
            started.append(Consumer(config).start())
        return started[-count:]

    yield start
    for consumer in started:
        consumer.stop()


@pytest.fixture()
def sqs_down(monkeypatch):
    """SQS unreachable (nothing listens on the port) until `sqs_down["now"] = False`."""
    import boto3
    from botocore.config import Config

    down = boto3.client("sqs", region_name="us-east-1", endpoint_url="http://127.0.0.1:9",
                        aws_access_key_id="testing", aws_secret_access_key="testing",
                        config=Config(connect_timeout=0.5, retries={"max_attempts": 1}))
    state, real = {"now": True}, queues.sqs_client
    monkeypatch.setattr(queues, "sqs_client", lambda: down if state["now"] else real())
    monkeypatch.setattr(queues.publisher, "down_until", 0.0)  # restored after the test: no breaker left tripped
    return state


@pytest.fixture()
def one_receive_at_a_time(outbound_settings, monkeypatch):
    """moto answers concurrent ReceiveMessage calls without a lock, so two consumers polling at the same moment
    can each take a message of one group (real SQS never hands out a group's next message while one is in
    flight). In-process consumers share one client: make its receives one at a time, long polls emulated by
    short ones, so a test of our ordering is not a test of that race."""
    client, lock = queues.sqs_client(), threading.Lock()
    receive = client.receive_message

    def serialized(**kwargs):
        deadline = time.monotonic() + kwargs.pop("WaitTimeSeconds", 0)
        while True:
            with lock:
                answer = receive(WaitTimeSeconds=0, **kwargs)
            if answer.get("Messages") or time.monotonic() >= deadline:
                return answer
            time.sleep(0.1)

    monkeypatch.setattr(client, "receive_message", serialized)


_DEAL_IDS = itertools.count(900_000)  # one simulator per package: ids never repeat within it


def deal(sim, deal_id: str | None = None) -> str:
    """A fresh HubSpot deal in the simulator (so each test reads only its own calls). Ids come from a counter:
    random ones collided now and then, and a test then read another test's PATCHes of the same deal."""
    hubspot = sim.provider("hubspot")
    deal_id = deal_id or str(next(_DEAL_IDS))
    hubspot._store(hubspot.deals, {"dealname": f"Deal {deal_id}", "dealstage": "appointmentscheduled"},
                   object_id=deal_id)
    return deal_id


def deal_patches(sim, deal_id: str) -> list[dict]:
    """The bodies of the PATCH calls the simulator answered for a deal, in the order they arrived."""
    return [json.loads(c.body)["properties"] for c in sim.calls("hubspot")
            if c.method == "PATCH" and c.path == f"/crm/v3/objects/deals/{deal_id}"]


def wait_until(check, timeout: float = 20.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"not true within {timeout} s: {check}")
