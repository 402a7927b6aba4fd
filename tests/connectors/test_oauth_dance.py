"""The whole OAuth life of a connection, per provider, over real HTTP against the simulators."""
from __future__ import annotations

import base64
import hashlib
import json
import secrets
from datetime import datetime, timezone
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from connectors.errors import InvalidOptions, Permanent, ReauthRequired, TokenRejected
from connectors.oauth import ApiContext, TokenSet
from connectors.registry import get_connector
from sandbox.asana import PROJECT
from tests.connectors.conftest import OPTIONS, PROVIDERS, REDIRECT_URI, app_for, authorize

ACCOUNT = {"xero": "6f5b0a1c-3c2e-4f4e-9d1a-0a1b2c3d4e5f", "hubspot": "7700111",
           "shopify": "zixly-demo.myshopify.com", "asana": "1200000000000001", "salesforce": "00D5g000004XyZ1EAK"}
ROTATES = {"xero": True, "shopify": True, "hubspot": False, "asana": False, "salesforce": False}
EXPIRES = {"xero": 1800, "hubspot": 1800, "shopify": 3600, "asana": 3600, "salesforce": None}


def one_api_operation(provider, connector, ctx) -> object:
    if provider == "xero":
        first = next(connector.list_invoices_modified_since(ctx, datetime(2000, 1, 1, tzinfo=timezone.utc)))
        return connector.get_invoice(ctx, first["InvoiceID"])["InvoiceID"] == first["InvoiceID"]
    if provider == "hubspot":
        return connector.get_deal(ctx, "9001")["properties"]["dealname"] == "Acme renewal"
    if provider == "shopify":
        return connector.get_order(ctx, 450789469)["id"] == 450789469
    if provider == "asana":
        return connector.create_task(ctx, name="Welcome call", projects=[PROJECT["gid"]])["name"] == "Welcome call"
    return len(list(connector.query(ctx, "SELECT Id, Name FROM rtms__CustomerInvoice__c"))) == 5


@pytest.mark.parametrize("provider", PROVIDERS)
def test_full_oauth_dance(sim, env, provider):
    connector, app, options = get_connector(provider, env), app_for(sim, provider), OPTIONS[provider]
    verifier = secrets.token_urlsafe(48)

    callback = authorize(connector, app, options, "state-abc", verifier)
    assert callback["state"] == "state-abc"
    tokens = connector.exchange_code(app, code=callback["code"], redirect_uri=REDIRECT_URI, code_verifier=verifier,
                                     options=options, params=callback)
    assert tokens.access_token and tokens.refresh_token
    assert sim.token_requests(provider, "authorization_code") == 1
    if EXPIRES[provider] is None:
        assert tokens.expires_at is None
    else:
        assert tokens.expires_within(EXPIRES[provider] + 5) and not tokens.expires_within(EXPIRES[provider] - 60)

    accounts = connector.list_accounts(tokens, options)
    assert accounts[0].account_id == ACCOUNT[provider]
    ctx = ApiContext(tokens, options, accounts[0].account_id)
    assert connector.test(ctx)["account_id"] == ACCOUNT[provider]
    assert one_api_operation(provider, connector, ctx)

    refreshed = connector.refresh(app, tokens, options)
    assert sim.token_requests(provider, "refresh_token") == 1
    assert refreshed.access_token != tokens.access_token
    assert (refreshed.refresh_token != tokens.refresh_token) is ROTATES[provider]
    assert refreshed.refresh_token
    assert connector.test(ApiContext(refreshed, options, ctx.account_id))["account_id"] == ACCOUNT[provider]
    # What the caller stores (encrypted) comes back whole.
    assert TokenSet.from_dict(json.loads(json.dumps(refreshed.to_dict()))) == refreshed

    assert connector.revoke(app, refreshed, options) is True
    with pytest.raises(ReauthRequired):
        connector.refresh(app, refreshed, options)


def test_xero_consent_lists_every_organisation(connected):
    xero = connected("xero")
    accounts = xero.connector.list_accounts(xero.tokens)
    assert [a.name for a in accounts] == ["Demo Company (NZ)", "Zixly Test Ltd"]
    assert len({a.extra["connection_id"] for a in accounts}) == 2
    other = ApiContext(xero.tokens, {}, accounts[1].account_id)
    assert xero.connector.test(other)["name"] == "Zixly Test Ltd"


@pytest.mark.parametrize("provider", ["xero", "hubspot", "asana", "salesforce"])
def test_authorization_url_carries_an_s256_challenge(sim, env, provider):
    connector, app = get_connector(provider, env), app_for(sim, provider)
    verifier = secrets.token_urlsafe(48)
    url = connector.authorization_url(app, redirect_uri=REDIRECT_URI, state="s", code_verifier=verifier,
                                      options=OPTIONS[provider])
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    expected = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    assert query["code_challenge"] == expected and query["code_challenge_method"] == "S256"
    assert query["client_id"] == app.client_id and query["redirect_uri"] == REDIRECT_URI
    assert "client_secret" not in url and app.client_secret not in url


def test_xero_asks_for_offline_access_so_a_refresh_token_is_issued(sim, env):
    url = get_connector("xero", env).authorization_url(app_for(sim, "xero"), redirect_uri=REDIRECT_URI, state="s")
    assert "offline_access" in parse_qs(urlsplit(url).query)["scope"][0].split()


def test_shopify_authorizes_on_the_shop_itself_without_pkce(sim, env):
    url = get_connector("shopify", env).authorization_url(
        app_for(sim, "shopify"), redirect_uri=REDIRECT_URI, state="s", code_verifier="v" * 43,
        options={"shop": "Zixly-Demo.myshopify.com"})
    assert urlsplit(url).path == "/shopify/zixly-demo.myshopify.com/admin/oauth/authorize"
    assert "code_challenge" not in url


@pytest.mark.parametrize("provider", ["xero", "hubspot", "asana", "salesforce"])
def test_a_wrong_pkce_verifier_gets_no_tokens(sim, env, provider):
    connector, app, options = get_connector(provider, env), app_for(sim, provider), OPTIONS[provider]
    callback = authorize(connector, app, options, "s", secrets.token_urlsafe(48))
    with pytest.raises(Permanent):
        connector.exchange_code(app, code=callback["code"], redirect_uri=REDIRECT_URI,
                                code_verifier=secrets.token_urlsafe(48), options=options, params=callback)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_code_works_once_and_its_replay_revokes_what_it_issued(sim, env, provider):
    connector, app, options = get_connector(provider, env), app_for(sim, provider), OPTIONS[provider]
    verifier = secrets.token_urlsafe(48)
    callback = authorize(connector, app, options, "s", verifier)
    exchange = dict(app=app, code=callback["code"], redirect_uri=REDIRECT_URI, code_verifier=verifier,
                    options=options, params=callback)
    tokens = connector.exchange_code(**exchange)
    with pytest.raises(Permanent):
        connector.exchange_code(**exchange)
    with pytest.raises(ReauthRequired):
        connector.refresh(app, tokens, options)


def test_a_wrong_client_secret_is_refused(sim, env):
    connector, app = get_connector("xero", env), app_for(sim, "xero")
    callback = authorize(connector, app, {}, "s", None)
    impostor = type(app)(app.client_id, "not-the-secret")
    with pytest.raises(Permanent) as refused:
        connector.exchange_code(impostor, code=callback["code"], redirect_uri=REDIRECT_URI, options={},
                                params=callback)
    assert refused.value.status == 401 and "not-the-secret" not in str(refused.value)


def test_shopify_callback_must_carry_shopifys_signature(sim, env):
    connector, app, options = get_connector("shopify", env), app_for(sim, "shopify"), OPTIONS["shopify"]
    callback = authorize(connector, app, options, "s", None)
    assert {"code", "hmac", "host", "shop", "state", "timestamp"} <= set(callback)
    for tampered in ({**callback, "code": callback["code"] + "x"}, {**callback, "hmac": "0" * 64},
                     {k: v for k, v in callback.items() if k != "hmac"}):
        with pytest.raises(Permanent):
            connector.exchange_code(app, code=tampered["code"], redirect_uri=REDIRECT_URI, options=options,
                                    params=tampered)
    assert sim.token_requests("shopify", "authorization_code") == 0
    connector.exchange_code(app, code=callback["code"], redirect_uri=REDIRECT_URI, options=options, params=callback)
    assert sim.token_requests("shopify", "authorization_code") == 1


def test_shopify_callback_from_another_shop_is_refused(sim, env):
    connector, app = get_connector("shopify", env), app_for(sim, "shopify")
    callback = authorize(connector, app, {"shop": "other-store.myshopify.com"}, "s", None)
    with pytest.raises(InvalidOptions) as refused:
        connector.exchange_code(app, code=callback["code"], redirect_uri=REDIRECT_URI,
                                options={"shop": "zixly-demo.myshopify.com"}, params=callback)
    assert "shop" in refused.value.errors
    assert sim.token_requests("shopify", "authorization_code") == 0


def test_salesforce_refuses_a_token_response_whose_identity_signature_is_wrong(sim, env):
    connector, app = get_connector("salesforce", env), app_for(sim, "salesforce")
    token = {"access_token": "00D!x", "id": "https://login.salesforce.com/id/00D5g000004XyZ1EAK/0055g00000AbCdEAAV",
             "issued_at": "1700000000000", "instance_url": "https://zixly-demo.my.salesforce.com"}
    good = base64.b64encode(hashlib.sha256(b"").digest()).decode()  # right shape, wrong key
    with pytest.raises(Permanent):
        connector.to_tokenset({**token, "signature": good}, app, {})
    evil = {**token, "instance_url": "https://169.254.169.254"}
    with pytest.raises(InvalidOptions):
        connector.to_tokenset(evil, app, {})


def test_expired_access_token_is_rejected_until_refreshed(sim, connected):
    hubspot = connected("hubspot")
    sim.expire_tokens("hubspot")
    with pytest.raises(TokenRejected):
        hubspot.connector.get_deal(hubspot.ctx, "9001")
    fresh = hubspot.connector.refresh(hubspot.app, hubspot.tokens)
    assert hubspot.connector.get_deal(ApiContext(fresh, {}, hubspot.ctx.account_id), "9001")["id"] == "9001"


def test_revoked_grant_makes_refresh_ask_for_reauthorisation(sim, connected):
    xero = connected("xero")
    assert sim.revoke_grant("xero", xero.tokens.refresh_token) == 1
    with pytest.raises(ReauthRequired) as gone:
        xero.connector.refresh(xero.app, xero.tokens)
    assert not isinstance(gone.value, TokenRejected)
    with pytest.raises(TokenRejected):
        xero.connector.test(xero.ctx)


def test_xero_previous_refresh_token_still_works_during_the_grace_period(sim, connected):
    xero = connected("xero")
    first = xero.connector.refresh(xero.app, xero.tokens)
    again = xero.connector.refresh(xero.app, xero.tokens)   # a worker that lost the first answer
    assert first.refresh_token != again.refresh_token
    sim.configure("xero", refresh_grace=0)
    latest = xero.connector.refresh(xero.app, again)
    with pytest.raises(ReauthRequired):
        xero.connector.refresh(xero.app, again)
    assert latest.refresh_token


def test_authorize_with_an_unregistered_redirect_uri_is_refused(sim, env):
    connector, app = get_connector("asana", env), app_for(sim, "asana")
    url = connector.authorization_url(app, redirect_uri="https://evil.example/cb", state="s")
    answer = requests.get(url, allow_redirects=False, timeout=5)
    assert answer.status_code == 400 and "Location" not in answer.headers
