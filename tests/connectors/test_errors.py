"""Failures become typed errors workers can act on: wait (429), re-authorise (401), retry (5xx), or give up."""
from __future__ import annotations

import socket
import time
from datetime import datetime

import pytest

from connectors.env import ConnectorEnv
from connectors.errors import NotFound, Permanent, RateLimited, TokenRejected, Transient
from connectors.oauth import ApiContext, TokenSet
from connectors.registry import get_connector
from sandbox.asana import PROJECT

# Calls that read, per provider; and a write that must never be repeated blindly.
READS = {
    "xero": lambda c: c.connector.get_invoice(
        c.ctx, next(c.connector.list_invoices_modified_since(c.ctx, datetime(2000, 1, 1)))["InvoiceID"]),
    "hubspot": lambda c: c.connector.get_deal(c.ctx, "9001"),
    "shopify": lambda c: c.connector.get_order(c.ctx, 450789469),
    "asana": lambda c: c.connector.test(c.ctx),
    "salesforce": lambda c: c.connector.test(c.ctx),
}
API_PREFIX = {"xero": "api.xero.com/api.xro", "hubspot": "api.hubapi.com/crm",
              "shopify": "zixly-demo.myshopify.com/admin/api", "asana": "app.asana.com/api",
              "salesforce": "zixly-demo.my.salesforce.com/services/data"}


@pytest.mark.parametrize("provider", ["xero", "shopify", "asana", "hubspot", "salesforce"])
def test_rate_limit_reports_how_long_to_wait(sim, connected, provider):
    conn = connected(provider)
    READS[provider](conn)   # warm: Xero's first read lists invoices
    sim.force_rate_limit(provider, retry_after=7, count=1)
    with pytest.raises(RateLimited) as limited:
        READS[provider](conn)
    assert limited.value.retry_after >= 7
    assert limited.value.info is not None


def test_rate_limit_then_waiting_that_long_succeeds(sim, connected):
    asana = connected("asana")
    sim.force_rate_limit("asana", retry_after=1, count=1)
    with pytest.raises(RateLimited) as limited:
        asana.connector.test(asana.ctx)
    time.sleep(limited.value.retry_after)
    assert asana.connector.test(asana.ctx)["user"]


def test_rate_limit_signals_are_read_from_every_provider(sim, connected):
    xero = connected("xero")
    xero.connector.test(xero.ctx)
    assert xero.connector.http.last_rate_limit.windows["minute"].remaining <= 59
    sim.force_rate_limit("xero", retry_after=30)
    with pytest.raises(RateLimited) as limited:
        xero.connector.test(xero.ctx)
    assert limited.value.info.problem == "minute" and limited.value.retry_after == 30
    shopify = connected("shopify")
    shopify.connector.get_order(shopify.ctx, 450789469)
    assert shopify.connector.http.last_rate_limit.windows["bucket"].limit == 40
    salesforce = connected("salesforce")
    salesforce.connector.test(salesforce.ctx)
    assert salesforce.connector.http.last_rate_limit.windows["api_usage"].limit == 15000
    hubspot = connected("hubspot")
    hubspot.connector.get_deal(hubspot.ctx, "9001")
    assert hubspot.connector.http.last_rate_limit.windows["interval"].limit == 110


@pytest.mark.parametrize("provider", ["xero", "hubspot", "shopify", "asana", "salesforce"])
def test_rejected_access_token_is_a_reauth_signal(sim, connected, provider):
    conn = connected(provider)
    sim.expire_tokens(provider)
    with pytest.raises(TokenRejected):
        READS[provider](conn)


@pytest.mark.parametrize("provider", ["xero", "hubspot", "shopify", "asana", "salesforce"])
def test_5xx_on_a_read_is_retried_twice_then_transient(sim, connected, provider):
    conn = connected(provider)
    READS[provider](conn)
    sim.clear_log()
    sim.force_error(provider, status=503, count=5)
    with pytest.raises(Transient) as failed:
        READS[provider](conn)
    assert failed.value.status == 503
    assert len(sim.calls(provider, API_PREFIX[provider])) == 3


def test_5xx_that_clears_within_the_retries_succeeds(sim, connected):
    hubspot = connected("hubspot")
    sim.clear_log()
    sim.force_error("hubspot", status=502, count=2)
    assert hubspot.connector.get_deal(hubspot.ctx, "9001")["id"] == "9001"
    assert [c.status for c in sim.calls("hubspot", "/crm/v3/objects/deals")] == [502, 502, 200]


def test_a_create_is_never_retried(sim, connected):
    asana = connected("asana")
    sim.force_error("asana", status=503, count=1)
    with pytest.raises(Transient):
        asana.connector.create_task(asana.ctx, name="once", projects=[PROJECT["gid"]])
    assert len(sim.calls("asana", "/api/1.0/tasks")) == 1
    assert not sim.provider("asana").tasks


def test_xero_create_without_idempotency_key_is_not_retried_but_with_one_is(sim, connected):
    xero = connected("xero")
    sim.force_error("xero", status=503, count=1)
    with pytest.raises(Transient):
        xero.connector.create_contact(xero.ctx, {"Name": "Once Only"})
    sim.force_error("xero", status=503, count=1)
    assert xero.connector.create_contact(xero.ctx, {"Name": "Once Only"}, idempotency_key="k")["Name"] == "Once Only"
    assert [c.status for c in sim.calls("xero", "/api.xro/2.0/Contacts")] == [503, 503, 200]


def test_other_4xx_is_permanent_and_not_retried(sim, connected):
    hubspot = connected("hubspot")
    sim.clear_log()
    with pytest.raises(Permanent) as refused:
        hubspot.connector.update_deal(hubspot.ctx, "9001", "not an object")
    assert refused.value.status == 400 and not isinstance(refused.value, NotFound)
    assert len(sim.calls("hubspot")) == 1


def test_connection_refused_is_retried_then_transient_and_every_attempt_is_reported():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    seen = []
    env = ConnectorEnv(simulator_url=f"http://127.0.0.1:{port}", retry_backoff=0,
                       on_response=lambda *args: seen.append(args))
    connector = get_connector("asana", env)
    with pytest.raises(Transient):
        connector.test(ApiContext(TokenSet("t"), {}, "w"))
    assert [(p, m, s) for p, m, s, _ in seen] == [("asana", "GET", 0)] * 3


def test_every_response_is_reported_with_its_latency(sim, connected):
    seen = []
    hubspot = connected("hubspot")
    connector = get_connector("hubspot", ConnectorEnv(simulator_url=sim.url, retry_backoff=0,
                                                      on_response=lambda *a: seen.append(a)))
    connector.get_deal(hubspot.ctx, "9001")
    sim.force_error("hubspot", status=504, count=3)
    with pytest.raises(Transient):
        connector.get_deal(hubspot.ctx, "9001")
    assert [(p, m, s) for p, m, s, _ in seen] == [("hubspot", "GET", 200)] + [("hubspot", "GET", 504)] * 3
    assert all(seconds >= 0 for *_, seconds in seen)


def test_redirects_are_not_followed(sim, env):
    connector = get_connector("xero", env)
    sim.register_app("xero", "cid", "secret")
    url = "https://login.xero.com/identity/connect/authorize?client_id=cid&redirect_uri=https://x.test/cb&state=s"
    with pytest.raises(Permanent) as refused:
        connector.http.request("GET", url)
    assert refused.value.status == 302
    assert len(sim.calls()) == 1


def test_a_read_that_times_out_is_retried_then_transient(sim, connected):
    asana = connected("asana")
    seen = []
    connector = get_connector("asana", ConnectorEnv(simulator_url=sim.url, retry_backoff=0, timeout=0.2,
                                                    on_response=lambda *a: seen.append(a)))
    sim.force_delay("asana", 0.6, count=3)
    started = time.monotonic()
    with pytest.raises(Transient):
        connector.test(asana.ctx)
    assert time.monotonic() - started < 1.5
    assert [status for _, _, status, _ in seen] == [0, 0, 0]
    assert all(0.15 < seconds < 0.5 for *_, seconds in seen)


def test_a_write_that_times_out_is_not_repeated(sim, connected):
    asana = connected("asana")
    connector = get_connector("asana", ConnectorEnv(simulator_url=sim.url, retry_backoff=0, timeout=0.2))
    sim.force_delay("asana", 0.4, count=1)
    with pytest.raises(Transient):
        connector.create_task(asana.ctx, name="slow", projects=[PROJECT["gid"]])
    time.sleep(0.5)
    assert len(sim.calls("asana", "/api/1.0/tasks")) == 1
