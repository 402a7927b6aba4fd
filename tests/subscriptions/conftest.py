"""Subscriptions end to end: real PostgreSQL, Redis, a Celery worker (threads) and a local receiver verifying
with `standardwebhooks`; Novu is tests/fake_novu.py. Loopback http receivers are allowed by the explicit setting
only; the retry schedule and thresholds are settings the tests shorten."""
from __future__ import annotations

import dataclasses
import time

import pytest
from celery.contrib.testing.worker import start_worker
from sqlalchemy import select

import core.notify.service
import core.subscriptions.delivery
import core.subscriptions.service
import workers.jobs  # noqa: F401  (registers the tasks)
import workers.notifications  # noqa: F401
import workers.subscriptions  # noqa: F401
from core.events.models import Subscription, SubscriptionMessage
from core.platform.queue import celery_app
from tenancy.context import tenant_context
from tenancy.db import tenant_session
from tests.fake_novu import FakeNovu
from tests.webhook_receiver import Receiver


class Knobs:
    """The settings the subscription code reads, changeable per test (restored after each)."""

    def __init__(self, base):
        self.base, self.current = base, base

    def set(self, **changes):
        self.current = dataclasses.replace(self.current, **changes)

    def __call__(self):
        return self.current


@pytest.fixture(scope="module")
def fake_novu():
    server = FakeNovu(hang_seconds=1)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def knobs(app, settings, fake_novu):
    local = dataclasses.replace(settings, subscription_allow_loopback_http=True, novu_api_key="nv-test",
                                novu_server_url=fake_novu.url, novu_timeout=0.5)
    knobs = Knobs(local)
    with pytest.MonkeyPatch.context() as patch:
        for module in (core.subscriptions.service, core.subscriptions.delivery, core.notify.service):
            patch.setattr(module, "settings", knobs)
        yield knobs


@pytest.fixture(autouse=True)
def _reset(knobs):
    knobs.current = knobs.base
    yield
    knobs.current = knobs.base


@pytest.fixture(scope="module")
def worker(knobs):
    with start_worker(celery_app, pool="threads", concurrency=4, perform_ping_check=False, shutdown_timeout=10):
        yield


@pytest.fixture(scope="module")
def receiver():
    server = Receiver()
    yield server
    server.stop()


def wait_until(check, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {check}")


def subscribe(client, tenant, receiver, path, event_types=("job.completed",), **extra):
    r = client.post("/v1/subscriptions", headers=tenant.headers,
                    json={"url": receiver.url(path), "event_types": list(event_types), **extra})
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    receiver.secrets[path] = [body["secret"]]
    return body


def run_jobs(client, tenant, n, **input_):
    ids = []
    for i in range(n):
        r = client.post("/v1/jobs", headers=tenant.headers, json={"workflow": "echo", "input": {"n": i, **input_}})
        assert r.status_code == 202, r.get_json()
        ids.append(r.get_json()["id"])
    return ids


def messages_of(tenant, subscription_id):
    with tenant_context(tenant.ref), tenant_session() as session:
        return list(session.scalars(select(SubscriptionMessage).where(
            SubscriptionMessage.subscription_id == subscription_id).order_by(SubscriptionMessage.seq)))


def subscription_of(tenant, subscription_id) -> Subscription:
    """Read from the database (polling the API would spend the tenant's rate limit)."""
    with tenant_context(tenant.ref), tenant_session() as session:
        return session.get(Subscription, subscription_id)
