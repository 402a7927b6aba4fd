"""A fresh simulator per test, and the OAuth dance as a helper: what a connection setup does, minus the database."""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from connectors.oauth import ApiContext, AppCredentials, Connector, TokenSet
from connectors.registry import ConnectorEnv, get_connector
from sandbox import Simulator

REDIRECT_URI = "https://app.zixly.test/v1/oauth/callback"
OPTIONS = {
    "xero": {},
    "hubspot": {},
    "shopify": {"shop": "zixly-demo.myshopify.com"},
    "asana": {},
    "salesforce": {"login_url": "https://login.salesforce.com"},
}
PROVIDERS = tuple(OPTIONS)


@pytest.fixture
def sim():
    simulator = Simulator(poll_interval=0.02).start()
    yield simulator
    simulator.stop()


@pytest.fixture
def env(sim):
    return ConnectorEnv(simulator_url=sim.url, retry_backoff=0)


@dataclass
class Connected:
    connector: Connector
    app: AppCredentials
    tokens: TokenSet
    ctx: ApiContext
    callback: dict


def app_for(sim: Simulator, provider: str) -> AppCredentials:
    app = AppCredentials(f"{provider}-{secrets.token_hex(4)}", secrets.token_urlsafe(24))
    sim.register_app(provider, app.client_id, app.client_secret, [REDIRECT_URI])
    return app


def authorize(connector: Connector, app: AppCredentials, options: dict, state: str, verifier: str | None) -> dict:
    """Follow the authorization URL like a browser would, stopping at the redirect back to Zixly."""
    url = connector.authorization_url(app, redirect_uri=REDIRECT_URI, state=state, code_verifier=verifier,
                                      options=options)
    answer = requests.get(url, allow_redirects=False, timeout=5)
    assert answer.status_code == 302, answer.text
    location = answer.headers["Location"]
    assert location.startswith(REDIRECT_URI + "?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def connect(sim: Simulator, env: ConnectorEnv, provider: str, options: dict | None = None) -> Connected:
    connector = get_connector(provider, env)
    options = OPTIONS[provider] if options is None else options
    app = app_for(sim, provider)
    verifier = secrets.token_urlsafe(48)
    callback = authorize(connector, app, options, "state-1", verifier)
    tokens = connector.exchange_code(app, code=callback["code"], redirect_uri=REDIRECT_URI,
                                     code_verifier=verifier, options=options, params=callback)
    account = connector.list_accounts(tokens, options)[0]
    return Connected(connector, app, tokens, ApiContext(tokens, options, account.account_id), callback)


@pytest.fixture
def connected(sim, env):
    return lambda provider, options=None: connect(sim, env, provider, options)
