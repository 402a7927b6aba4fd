"""The plain values connectors hand back and the registry that finds them; no servers needed."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from connectors.base import WebhookScheme
from connectors.oauth import AppCredentials, Connector, TokenSet
from connectors.ratelimits import parse_rate_limit, parse_retry_after
from connectors.registry import CONNECTORS, SCHEMES, ConnectorEnv, UnknownProvider, get_connector


def test_tokenset_round_trips_through_json_and_hides_secrets_in_repr():
    tokens = TokenSet("access-XYZ", "refresh-XYZ", 1_700_000_000.5, "Bearer", "a b", {"instance_url": "https://x"})
    assert TokenSet.from_dict(json.loads(json.dumps(tokens.to_dict()))) == tokens
    assert "XYZ" not in repr(tokens) and "s3cret" not in repr(AppCredentials("id", "s3cret"))
    assert TokenSet.from_dict({"access_token": "a"}) == TokenSet("a")


def test_expiry_check():
    tokens = TokenSet("a", expires_at=1000.0)
    assert tokens.expires_within(60, now=950) and not tokens.expires_within(30, now=950)
    assert not TokenSet("a").expires_within(10 ** 9)


def test_rate_limit_headers_of_each_provider():
    xero = parse_rate_limit({"Retry-After": "42", "X-Rate-Limit-Problem": "day", "X-DayLimit-Remaining": "0",
                             "X-MinLimit-Remaining": "55", "X-AppMinLimit-Remaining": "9000"})
    assert (xero.retry_after, xero.problem, xero.remaining, xero.wait_seconds()) == (42.0, "day", 0, 42.0)
    hubspot = parse_rate_limit({"X-HubSpot-RateLimit-Interval-Milliseconds": "10000", "X-HubSpot-RateLimit-Max": "110",
                                "X-HubSpot-RateLimit-Remaining": "3", "X-HubSpot-RateLimit-Secondly": "11",
                                "X-HubSpot-RateLimit-Secondly-Remaining": "9"})
    assert hubspot.windows["interval"].limit == 110 and hubspot.remaining == 3 and hubspot.wait_seconds() == 10.0
    shopify = parse_rate_limit({"X-Shopify-Shop-Api-Call-Limit": "32/40", "Retry-After": "2.0"})
    assert (shopify.windows["bucket"].remaining, shopify.retry_after) == (8, 2.0)
    salesforce = parse_rate_limit({"Sforce-Limit-Info": "api-usage=25/15000, per-app-api-usage=17/250(appName=x)"})
    assert salesforce.windows["api_usage"].remaining == 14975
    assert parse_rate_limit({"X-Shopify-Shop-Api-Call-Limit": "garbage", "Retry-After": "soon"}).windows == {}


def test_retry_after_as_an_http_date():
    now = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
    assert parse_retry_after(format_datetime(now + timedelta(seconds=90), usegmt=True), now=now) == 90
    assert parse_retry_after(format_datetime(now - timedelta(seconds=90), usegmt=True), now=now) == 0
    assert parse_retry_after("-5") == 0 and parse_retry_after("nan") is None and parse_retry_after(None) is None


@pytest.mark.parametrize("provider", sorted(CONNECTORS))
def test_every_connector_declares_its_settings(provider):
    connector = get_connector(provider)
    assert isinstance(connector, Connector) and connector.provider == provider
    assert connector.display_name and connector.account_kind and connector.scopes
    assert isinstance(connector.scheme, WebhookScheme) and connector.scheme is not None
    assert type(connector.scheme) is type(SCHEMES[provider])
    assert isinstance(connector.supports_pkce, bool)


def test_registry_refuses_unknown_providers_and_custom_has_no_connector():
    for name in ("nope", "custom", None, ["xero"]):
        with pytest.raises(UnknownProvider):
            get_connector(name)
    assert "custom" in SCHEMES and get_connector("xero", ConnectorEnv(timeout=3)).env.timeout == 3


@pytest.mark.parametrize("provider", ["xero", "hubspot", "asana"])
def test_providers_without_options_refuse_unknown_ones(provider):
    connector = get_connector(provider)
    assert connector.validate_options({}) == {} and connector.validate_options(None) == {}
    with pytest.raises(ValueError):
        connector.validate_options({"shop": "x"})
    with pytest.raises(ValueError):
        connector.validate_options(["not", "a", "mapping"])
