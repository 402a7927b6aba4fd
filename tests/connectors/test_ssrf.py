"""No tenant can aim Zixly's servers at an internal address: domain patterns, resolved addresses, one simulator."""
from __future__ import annotations

import ipaddress
import socket

import pytest
import requests
from requests.adapters import HTTPAdapter

from connectors.env import ConnectorEnv
from connectors.errors import InvalidOptions, Transient, UnsafeAddress
from connectors.hosts import ensure_public_host, is_public_address, validate_instance_url, validate_shop_domain
from connectors.oauth import ApiContext, AppCredentials, TokenSet
from connectors.registry import get_connector

APP = AppCredentials("cid", "secret")
PRIVATE = {
    "ten.myshopify.com": ["10.0.0.5"],
    "loop6.myshopify.com": ["::1"],
    "mapped.myshopify.com": ["::ffff:127.0.0.1"],
    "metadata.myshopify.com": ["169.254.169.254"],
    "mixed.myshopify.com": ["93.184.215.14", "192.168.1.10"],
    "linklocal6.myshopify.com": ["fe80::1"],
    "nat64.myshopify.com": ["64:ff9b::a00:5"],
    "sixtofour.myshopify.com": ["2002:7f00:1::1"],   # 6to4 wrapping 127.0.0.1, "global" to ipaddress
    "cgnat.myshopify.com": ["100.64.0.1"],
    "zero.myshopify.com": ["0.0.0.0"],
    "multicast.myshopify.com": ["224.0.0.1"],
    "internal.my.salesforce.com": ["172.16.0.9"],
    "api.xero.com": ["10.1.2.3"],
}
PUBLIC = {"acme.myshopify.com": ["23.227.38.65"], "acme.my.salesforce.com": ["2606:4700::6810:84e5"],
          "login.salesforce.com": ["8.8.8.8"], "app.asana.com": ["8.8.4.4"]}


def resolver(host: str) -> list[str]:
    """Like getaddrinfo: literals (even "127.1" or "2130706433") resolve to themselves; names from the tables."""
    try:
        return [str(ipaddress.ip_address(host.strip("[]")))]
    except ValueError:
        pass
    try:
        return [socket.inet_ntoa(socket.inet_aton(host))]
    except OSError:
        pass
    if host in PRIVATE:
        return PRIVATE[host]
    if host in PUBLIC:
        return PUBLIC[host]
    raise OSError("name does not resolve")


@pytest.fixture
def sent(monkeypatch):
    """Whatever reaches the transport below our guard (requests' own adapter) is recorded and not sent."""
    seen = []

    def record(self, request, **kwargs):
        seen.append(request.url)
        response = requests.Response()
        response.status_code, response._content, response.url = 200, b'{"data": {"gid": "1"}}', request.url
        response.headers["Content-Type"] = "application/json"
        return response

    monkeypatch.setattr(HTTPAdapter, "send", record)
    return seen


@pytest.fixture
def real_env():
    return ConnectorEnv(resolver=resolver, retry_backoff=0)


@pytest.mark.parametrize("shop", ["127.0.0.1", "evil.com", "x.myshopify.com.evil.com", "https://x.myshopify.com",
                                  "x.myshopify.com:8443", "x.myshopify.com/admin", "-x.myshopify.com",
                                  "x.myshopify.com.", "x@myshopify.com", "", None, 42, "ｘ.myshopify.com"])
def test_shop_must_be_a_myshopify_domain(shop):
    with pytest.raises(UnsafeAddress) as refused:
        validate_shop_domain(shop)
    assert "shop" in refused.value.errors


def test_shop_is_normalised():
    assert validate_shop_domain("  Acme-Store.MyShopify.com ") == "acme-store.myshopify.com"


@pytest.mark.parametrize("url", ["http://169.254.169.254/", "http://acme.my.salesforce.com",
                                 "https://169.254.169.254", "https://evil.com", "https://salesforce.com.evil.com",
                                 "https://acme.my.salesforce.com:8443", "https://user@acme.my.salesforce.com",
                                 "https://acme.my.salesforce.com/services", "https://acme.my.salesforce.com?x=1",
                                 "https://evil.com\\@acme.my.salesforce.com", "https://[::1]", "ftp://acme.force.com",
                                 "https://acme.my.salesforce.com.", "https://acme.salesforce.com.evil.com", ""])
def test_instance_url_must_be_a_salesforce_https_base_url(url):
    with pytest.raises(UnsafeAddress):
        validate_instance_url(url)


@pytest.mark.parametrize("url", ["https://acme.my.salesforce.com", "https://Acme--UAT.sandbox.my.salesforce.com/",
                                 "https://na44.salesforce.com", "https://acme.lightning.force.com",
                                 "https://acme.cloudforce.com", "https://login.salesforce.com"])
def test_salesforce_domains_are_accepted(url):
    assert validate_instance_url(url) == url.rstrip("/").lower()


@pytest.mark.parametrize("host", sorted(PRIVATE))
def test_names_resolving_to_private_addresses_are_refused(host):
    with pytest.raises(UnsafeAddress):
        ensure_public_host(host, resolver)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.1", "0x7f.0.0.1", "2130706433", "[::1]", "::ffff:10.0.0.1",
                                  "8.8.8.8", "2606:4700::1111", "", "nowhere.example"])
def test_literal_ips_and_unresolvable_names_are_refused(host):
    with pytest.raises(UnsafeAddress):
        ensure_public_host(host, resolver)


def test_public_names_pass():
    assert ensure_public_host("acme.myshopify.com", resolver) == ["23.227.38.65"]
    assert is_public_address("2606:4700::6810:84e5") and not is_public_address("fd00::1")


@pytest.mark.parametrize("shop", ["127.0.0.1", "evil.com", "x.myshopify.com.evil.com", "ten.myshopify.com",
                                  "loop6.myshopify.com", "mapped.myshopify.com", "nowhere.myshopify.com"])
def test_shopify_connection_to_an_unsafe_shop_is_refused_before_any_request(real_env, sent, shop):
    connector = get_connector("shopify", real_env)
    with pytest.raises(InvalidOptions):
        connector.validate_options({"shop": shop})
    with pytest.raises(InvalidOptions):
        connector.authorization_url(APP, redirect_uri="https://z.test/cb", state="s", options={"shop": shop})
    with pytest.raises(InvalidOptions):
        connector.exchange_code(APP, code="c", redirect_uri="https://z.test/cb", options={"shop": shop}, params={})
    assert sent == []


@pytest.mark.parametrize("options", [{"instance_url": "http://169.254.169.254/"},
                                     {"instance_url": "https://internal.my.salesforce.com"},
                                     {"login_url": "https://evil.com"}, {}, {"instance_url": 7},
                                     {"instance_url": "https://acme.my.salesforce.com", "extra": "x"}, "nope"])
def test_salesforce_connection_to_an_unsafe_instance_is_refused_before_any_request(real_env, sent, options):
    connector = get_connector("salesforce", real_env)
    with pytest.raises(InvalidOptions):
        connector.validate_options(options)
    with pytest.raises(InvalidOptions):
        connector.exchange_code(APP, code="c", redirect_uri="https://z.test/cb", options=options, params={})
    assert sent == []


def test_api_call_to_an_instance_url_outside_salesforce_is_refused(real_env, sent):
    connector = get_connector("salesforce", real_env)
    tokens = TokenSet("t", extra={"instance_url": "http://169.254.169.254"})
    with pytest.raises(InvalidOptions):
        connector.test(ApiContext(tokens, {}, "00D"))
    assert sent == []


def test_every_request_is_checked_where_it_is_about_to_go(real_env, sent):
    """Even a provider's own fixed host is refused if DNS points it inward (rebinding, poisoned resolver)."""
    connector = get_connector("xero", real_env)
    with pytest.raises(UnsafeAddress):
        connector.list_accounts(TokenSet("t"))
    assert sent == []
    asana = get_connector("asana", real_env)
    asana.test(ApiContext(TokenSet("t"), {}, "w"))
    assert sent == ["https://app.asana.com/api/1.0/users/me?opt_fields=name%2Cemail%2Cworkspaces.name"]


def test_a_dns_failure_at_call_time_is_transient_not_a_refusal(sent):
    connector = get_connector("asana", ConnectorEnv(resolver=lambda host: [], retry_backoff=0))
    with pytest.raises(Transient):
        connector.test(ApiContext(TokenSet("t"), {}, "w"))
    assert sent == []


def test_in_simulator_mode_tenant_hosts_are_still_checked_and_nothing_reaches_the_simulator(sim, env):
    connector = get_connector("shopify", env)
    for shop in ("127.0.0.1", "evil.com", "x.myshopify.com.evil.com"):
        with pytest.raises(UnsafeAddress):
            connector.authorization_url(APP, redirect_uri="https://z.test/cb", state="s", options={"shop": shop})
    salesforce = get_connector("salesforce", env)
    with pytest.raises(UnsafeAddress):
        salesforce.validate_options({"instance_url": "http://169.254.169.254/"})
    assert sim.calls() == []


def test_in_simulator_mode_only_the_simulator_may_be_called(sim, env, sent):
    connector = get_connector("asana", env)
    for url in ("http://127.0.0.2:1/x", "http://localhost:80/", "https://app.asana.com/api/1.0/users/me"):
        with pytest.raises(UnsafeAddress):
            connector.http.session.get(url)
    assert sent == []


def test_the_simulator_is_reachable_only_through_the_explicit_setting(sim, sent):
    """Without simulator_url, a loopback URL (where a simulator would listen) is refused like any other."""
    connector = get_connector("asana", ConnectorEnv(resolver=resolver))
    with pytest.raises(UnsafeAddress):
        connector.http.session.get(f"{sim.url}/asana/app.asana.com/api/1.0/users/me")
    assert sent == [] and sim.calls() == []


def test_env_rejects_a_simulator_url_that_is_not_a_base_url():
    for bad in ("127.0.0.1:5055", "ftp://127.0.0.1", "http://127.0.0.1:5055/xero"):
        with pytest.raises(ValueError):
            ConnectorEnv(simulator_url=bad)
    env = ConnectorEnv(simulator_url="http://127.0.0.1:5055/")
    assert env.route("shopify", "https://a.myshopify.com/admin/oauth/access_token?x=1") == \
        "http://127.0.0.1:5055/shopify/a.myshopify.com/admin/oauth/access_token?x=1"
    assert ConnectorEnv().route("xero", "https://api.xero.com/connections") == "https://api.xero.com/connections"
