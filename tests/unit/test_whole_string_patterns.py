"""Patterns that decide routing, names and settings match the whole value: a trailing newline is refused.

`re.match` lets `$` match before a final newline, and marshmallow's `Regexp` uses `re.match`; each case here
passed before these patterns were anchored with `\\Z` or checked with `FullMatch`.
"""
from __future__ import annotations

import marshmallow as ma
import pytest

from api.resources.notifications import EventSettingSchema, NotifiedUserSchema
from connectors.errors import InvalidOptions
from connectors.hosts import SALESFORCE_HOST, SHOP_DOMAIN, validate_shop_domain
from connectors.salesforce import _NAME, _RECORD_ID
from core.jobs.artifacts import NAME
from core.platform.validation import FullMatch
from core.workflows import hubspot_deal_won_to_asana, revenova_invoice_sync
from core.workflows.revenova_invoice_sync import STAMP


def test_shop_domain_pattern_refuses_a_trailing_newline() -> None:
    assert SHOP_DOMAIN.match("acme.myshopify.com")
    assert SHOP_DOMAIN.match("acme.myshopify.com\n") is None


@pytest.mark.parametrize("shop", ["acme.myshopify.com\nevil.example", "acme.myshopify.com\n.evil.example",
                                  "evil.example\nacme.myshopify.com"])
def test_a_shop_domain_with_a_newline_inside_is_refused(shop: str) -> None:
    with pytest.raises(InvalidOptions):
        validate_shop_domain(shop)


@pytest.mark.parametrize(("pattern", "good"), [
    (SALESFORCE_HOST, "acme.my.salesforce.com"), (_NAME, "Invoice__c"), (_RECORD_ID, "a0B5g0000010001AAA"),
    (NAME, "result.json"), (STAMP, "2026-05-01T10:00:00Z"),
])
def test_python_patterns_refuse_a_trailing_newline(pattern, good: str) -> None:
    assert pattern.match(good)
    assert pattern.match(good + "\n") is None


def test_full_match_validator_keeps_its_pattern_and_refuses_a_trailing_newline() -> None:
    validator = FullMatch(r"^[a-z]+$")
    assert validator("acme") == "acme" and validator.regex.pattern == r"^[a-z]+$"  # the spec shows this pattern
    with pytest.raises(ma.ValidationError):
        validator("acme\n")


@pytest.mark.parametrize(("schema", "field", "good"), [
    (NotifiedUserSchema(), "id", "user-1"),
    (hubspot_deal_won_to_asana.Mappings(), "project_gid", "1200000000001"),
    (revenova_invoice_sync.Mappings(), "sobject", "Invoice__c"),
])
def test_schema_patterns_refuse_a_trailing_newline(schema, field: str, good: str) -> None:
    assert field not in schema.validate({field: good})
    assert field in schema.validate({field: good + "\n"})


def test_notification_topic_keys_refuse_a_trailing_newline() -> None:
    assert "topics" not in EventSettingSchema().validate({"enabled": True, "topics": ["ops"]})
    assert "topics" in EventSettingSchema().validate({"enabled": True, "topics": ["ops\n"]})
