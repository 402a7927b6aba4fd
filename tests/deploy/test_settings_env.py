"""`environment_for(settings)` gives another process the same settings: `Settings.from_env()` under it is equal."""
from __future__ import annotations

import dataclasses

from connectors.registry import APP_HOOK_PROVIDERS
from core.platform.config import Settings
from tests.deploy.settings_env import environment_for, settings_env_vars

# Settings no variable sets: a server process started from the environment always has their defaults.
# Settings no variable sets: constants tests may override, and the subscription retry schedule, whose variable
# (ZIXLY_SUBSCRIPTION_RETRY_SCHEDULE, a list of seconds) is read apart from the keyword arguments
NO_VARIABLE = {"key_last_used_resolution", "idempotency_ttl_hours", "subscription_connect_timeout",
               "subscription_timeout", "subscription_max_payload_bytes", "subscription_retry_schedule"}


def _from_env(monkeypatch, tmp_path, env) -> Settings:
    for name in [v.name for v in settings_env_vars()]:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ZIXLY_HOME", str(tmp_path))  # empty: no development keys read from it
    return Settings.from_env()


def test_the_environment_of_some_settings_reads_back_as_the_same_settings(monkeypatch, tmp_path):
    settings = Settings(
        database_url="postgresql+psycopg://u:p@127.0.0.1:5/db", redis_url="redis://127.0.0.1:6/9",
        aws_endpoint_url="http://127.0.0.1:7", aws_region="eu-west-1", jwt_issuer="iss", jwt_audience="aud",
        jwt_staff_audience="staff-aud", jwt_public_key_file="/keys/jwt-public.pem", max_content_length=4096,
        db_pool_size=3, db_max_overflow=9, schema_pool_size=0, idempotency_lease_seconds=7, job_lease_seconds=8,
        jobs_stranded_after=9, rate_limit_fail_open=False, worker_concurrency=3, public_base_url="https://z.example",
        trusted_proxies=1, app_webhook_secrets={"xero": ("k1", "k2"), "shopify": (), "hubspot": ("h",)},
        hubspot_legacy_signatures=("v2",), data_keys="k:abc", provider_credentials={"xero": ("id", "secret")},
        provider_simulator_url="http://127.0.0.1:8", oauth_return_url="https://z.example/back",
        auth_failure_limit="5/minute", metrics_token="m", metrics_public=True, log_format="text",
        worker_metrics_port=9100, outbound_queue_prefix="p", outbound_quotas={"hubspot": "150/10", "xero": "60/60"},
        log_level="DEBUG", novu_api_key="n", novu_server_url="https://eu.api.novu.co", novu_timeout=2.5,
        novu_max_attempts=3)
    assert _from_env(monkeypatch, tmp_path, environment_for(settings)) == settings


def test_unset_settings_are_left_out(monkeypatch, tmp_path):
    # from_env names every app-hook provider, with no secrets for each (the dataclass default is an empty dict)
    settings = Settings(database_url="postgresql+psycopg://u@h/db", redis_url="redis://h/0",
                        app_webhook_secrets={p: () for p in APP_HOOK_PROVIDERS})
    env = environment_for(settings)
    assert "ZIXLY_METRICS_TOKEN" not in env and "ZIXLY_XERO_CLIENT_ID" not in env
    assert _from_env(monkeypatch, tmp_path, env) == settings


def test_every_other_setting_has_a_variable():
    fields = {f.name for f in dataclasses.fields(Settings)}
    read = {v.field for v in settings_env_vars()} | {"jwt_public_key_file"}
    assert fields - read == NO_VARIABLE
