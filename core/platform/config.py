"""Settings read from the environment once, passed down as plain values.

An environment variable, when set, always wins over the embedded default chosen by `zixly dev`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from connectors.hubspot import LEGACY_VERSIONS as HUBSPOT_LEGACY_VERSIONS
from connectors.registry import APP_HOOK_PROVIDERS, PROVIDERS


def _bool(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _list(value: str | None) -> tuple[str, ...]:
    return tuple(x.strip() for x in (value or "").split(",") if x.strip())


def _pairs(value: str | None) -> dict[str, str]:
    """`a=1,b=2` as {"a": "1", "b": "2"}."""
    return {k.strip(): v.strip() for k, _, v in (item.partition("=") for item in _list(value)) if k.strip()}


def _read(path: Path) -> str | None:
    return path.read_text().strip() or None if path.exists() else None




@dataclass(frozen=True)
class Settings:
    database_url: str
    redis_url: str
    aws_endpoint_url: str | None = None
    aws_region: str = "us-east-1"
    jwt_issuer: str = "zixly-dev"
    jwt_audience: str = "zixly-api"
    jwt_staff_audience: str | None = None  # staff tokens' `aud`; unset: `<jwt_audience>-staff` (never the same)
    jwt_public_key_file: str | None = None
    jwt_jwks_url: str | None = None
    max_content_length: int = 1024 * 1024
    db_pool_size: int = 5
    db_max_overflow: int = 5
    db_pool_recycle: int = 1800
    schema_pool_size: int = 10  # ready tenant schemas kept per shard (0: no pool, provisioning runs the DDL)
    key_last_used_resolution: int = 60
    idempotency_ttl_hours: int = 24
    idempotency_lease_seconds: int = 60  # an in-progress Idempotency-Key claim older than this may be taken over
    job_lease_seconds: int = 60  # a claimed job's lease, renewed while it runs; then another worker may claim it
    jobs_stranded_after: int = 600  # a QUEUED (or lease-expired RUNNING) job idle this long is re-published
    rate_limit_fail_open: bool = True
    broker_visibility_timeout: int = 3600
    worker_concurrency: int = 0  # Celery worker processes; 0: two per CPU core (see `worker_processes`)
    public_base_url: str | None = None
    trusted_proxies: int = 0
    # Zixly's own public apps: provider -> active webhook secrets (several during a rotation)
    app_webhook_secrets: dict = field(default_factory=dict)
    # HubSpot's untimed v1/v2 signatures, accepted only when listed (an app that cannot send v3); default none
    hubspot_legacy_signatures: tuple[str, ...] = ()
    # Data keys sealing OAuth tokens and webhook secrets (core.platform.crypto): inline, or a Secrets Manager secret
    data_keys: str | None = None
    data_keys_secret_id: str | None = None
    # Zixly's own OAuth apps: provider -> (client_id, client_secret); or one Secrets Manager JSON secret
    provider_credentials: dict = field(default_factory=dict)
    provider_credentials_secret_id: str | None = None
    # Development only: every provider URL points at this local simulator (python -m sandbox)
    provider_simulator_url: str | None = None
    oauth_return_url: str | None = None
    token_refresh_margin: int = 300
    artifacts_bucket: str = "zixly-artifacts"
    webhook_rate_limit: str = "1200/minute"
    auth_failure_limit: str = "30/minute"  # refused credentials per client address, before any catalog query
    metrics_token: str | None = None
    # /metrics without a token is refused unless this says it may be public (its labels name tenants)
    metrics_public: bool = False
    log_format: str = "json"
    worker_metrics_port: int | None = None
    # Outbound delivery: queue names are `<prefix>-outbound-<provider>.fifo` (Terraform creates the `zixly` ones);
    # quotas override a provider's default pace per connection, e.g. {"hubspot": "150/10"} (calls/seconds)
    outbound_queue_prefix: str = "zixly"
    outbound_quotas: dict = field(default_factory=dict)
    log_level: str = "INFO"
    # Novu: no key means notifications are logged as `skipped` with the request that would have been sent.
    novu_api_key: str | None = field(default=None, repr=False)
    novu_server_url: str = "https://api.novu.co"  # Novu Cloud US; EU: https://eu.api.novu.co; or self-hosted
    novu_timeout: float = 10.0  # seconds per trigger request
    novu_max_attempts: int = 10  # then the notification is `failed`
    # Event subscriptions (core.subscriptions): seconds to wait before each retry (7 retries over ~28 h), jitter
    # ±20 %; plain http and loopback receivers only when explicitly allowed (tests, local development)
    subscription_retry_schedule: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)
    subscription_allow_loopback_http: bool = False
    subscription_connect_timeout: float = 3.0
    subscription_timeout: float = 5.0  # seconds to wait for the receiver's answer
    subscription_tenant_concurrency: int = 4  # deliveries of one tenant in flight at once, over all workers
    subscription_disable_after_messages: int = 20  # consecutive messages given up on (no success between)
    subscription_disable_after_seconds: int = 5 * 86400  # failing continuously this long (no success between)
    subscription_secret_grace_seconds: int = 86400  # a rotated-out secret keeps signing this long
    subscription_max_payload_bytes: int = 256 * 1024
    # The console (console/): people sign in by OpenID Connect at the issuer the API trusts (`jwt_issuer`,
    # discovery at `<jwt_issuer>/.well-known/openid-configuration`), as this client
    console_oidc_client_id: str | None = None
    console_oidc_client_secret: str | None = field(default=None, repr=False)
    console_secret_key: str | None = field(default=None, repr=False)  # signs the session cookie
    console_cookie_secure: bool = True  # off only for plain-http development
    console_session_seconds: int = 8 * 3600
    console_dev_login: bool = False  # one-time sign-in links (`zixly console link`); development only
    # live pages (Server-Sent Events): one stream lasts this long, then the browser reconnects; at most this many
    # streams per process hold a thread at once (gunicorn's threads are few), the rest are told to come back later
    console_stream_seconds: int = 25
    console_max_streams: int = 2

    def __post_init__(self):
        object.__setattr__(self, "hubspot_legacy_signatures", tuple(v.lower() for v in self.hubspot_legacy_signatures))
        unknown = set(self.hubspot_legacy_signatures) - set(HUBSPOT_LEGACY_VERSIONS)
        if unknown:
            raise ValueError(f"ZIXLY_HUBSPOT_LEGACY_SIGNATURES: unknown versions {sorted(unknown)} "
                             f"(legacy HubSpot signatures are {', '.join(HUBSPOT_LEGACY_VERSIONS)})")
        if not self.jwt_staff_audience:
            object.__setattr__(self, "jwt_staff_audience", f"{self.jwt_audience}-staff")

    @property
    def worker_processes(self) -> int:
        """Jobs mostly wait (on the database, on providers, on their deliveries), so by default two worker
        processes per core: one's wait is the other's turn."""
        return self.worker_concurrency or 2 * (os.cpu_count() or 1)

    @classmethod
    def from_env(cls, **overrides) -> Settings:
        env = os.environ
        home = Path(env.get("ZIXLY_HOME", ".zixly"))
        public_key = env.get("ZIXLY_JWT_PUBLIC_KEY_FILE")
        if not public_key and (home / "jwt-public.pem").exists():
            public_key = str(home / "jwt-public.pem")
        values = dict(
            database_url=env.get("DATABASE_URL", ""),
            redis_url=env.get("REDIS_URL", ""),
            aws_endpoint_url=env.get("AWS_ENDPOINT_URL") or None,
            aws_region=env.get("AWS_DEFAULT_REGION", "us-east-1"),
            jwt_issuer=env.get("ZIXLY_JWT_ISSUER", "zixly-dev"),
            jwt_audience=env.get("ZIXLY_JWT_AUDIENCE", "zixly-api"),
            jwt_staff_audience=env.get("ZIXLY_JWT_STAFF_AUDIENCE") or None,
            jwt_public_key_file=public_key,
            jwt_jwks_url=env.get("ZIXLY_JWKS_URL") or None,
            max_content_length=int(env.get("ZIXLY_MAX_BODY_BYTES", 1024 * 1024)),
            db_pool_size=int(env.get("ZIXLY_DB_POOL_SIZE", 5)),
            db_max_overflow=int(env.get("ZIXLY_DB_MAX_OVERFLOW", 5)),
            db_pool_recycle=int(env.get("ZIXLY_DB_POOL_RECYCLE", 1800)),
            schema_pool_size=int(env.get("ZIXLY_SCHEMA_POOL_SIZE", 10)),
            idempotency_lease_seconds=int(env.get("ZIXLY_IDEMPOTENCY_LEASE_SECONDS", 60)),
            job_lease_seconds=int(env.get("ZIXLY_JOB_LEASE_SECONDS", 60)),
            jobs_stranded_after=int(env.get("ZIXLY_JOBS_STRANDED_AFTER", 600)),
            broker_visibility_timeout=int(env.get("ZIXLY_BROKER_VISIBILITY_TIMEOUT", 3600)),
            worker_concurrency=int(env.get("ZIXLY_WORKER_CONCURRENCY", 0)),
            public_base_url=env.get("ZIXLY_PUBLIC_BASE_URL") or None,
            trusted_proxies=int(env.get("ZIXLY_TRUSTED_PROXIES", 0)),
            app_webhook_secrets={p: _list(env.get(f"ZIXLY_{p.upper()}_APP_WEBHOOK_SECRETS"))
                                 for p in APP_HOOK_PROVIDERS},
            hubspot_legacy_signatures=_list(env.get("ZIXLY_HUBSPOT_LEGACY_SIGNATURES")),
            rate_limit_fail_open=_bool(env.get("ZIXLY_RATE_LIMIT_FAIL_OPEN"), True),
            data_keys=env.get("ZIXLY_DATA_KEYS") or _read(home / "data-keys"),
            data_keys_secret_id=env.get("ZIXLY_DATA_KEYS_SECRET_ID") or None,
            provider_credentials={p: (env[f"ZIXLY_{p.upper()}_CLIENT_ID"],
                                      env.get(f"ZIXLY_{p.upper()}_CLIENT_SECRET", ""))
                                  for p in PROVIDERS
                                  if env.get(f"ZIXLY_{p.upper()}_CLIENT_ID")},
            provider_credentials_secret_id=env.get("ZIXLY_PROVIDER_CREDENTIALS_SECRET_ID") or None,
            provider_simulator_url=env.get("ZIXLY_PROVIDER_SIMULATOR_URL") or None,
            oauth_return_url=env.get("ZIXLY_OAUTH_RETURN_URL") or None,
            token_refresh_margin=int(env.get("ZIXLY_TOKEN_REFRESH_MARGIN", 300)),
            artifacts_bucket=env.get("ZIXLY_ARTIFACTS_BUCKET", "zixly-artifacts"),
            webhook_rate_limit=env.get("ZIXLY_WEBHOOK_RATE_LIMIT", "1200/minute"),
            auth_failure_limit=env.get("ZIXLY_AUTH_FAILURE_LIMIT", "30/minute"),
            metrics_token=env.get("ZIXLY_METRICS_TOKEN") or None,
            metrics_public=_bool(env.get("ZIXLY_METRICS_PUBLIC"), False),
            log_format=env.get("ZIXLY_LOG_FORMAT", "json"),
            worker_metrics_port=int(env["ZIXLY_WORKER_METRICS_PORT"]) if env.get("ZIXLY_WORKER_METRICS_PORT") else None,
            log_level=env.get("ZIXLY_LOG_LEVEL", "INFO"),
            outbound_queue_prefix=env.get("ZIXLY_OUTBOUND_QUEUE_PREFIX", "zixly"),
            outbound_quotas=_pairs(env.get("ZIXLY_OUTBOUND_QUOTAS")),
            novu_api_key=env.get("NOVU_API_KEY") or None,
            novu_server_url=env.get("NOVU_SERVER_URL") or "https://api.novu.co",
            novu_timeout=float(env.get("NOVU_TIMEOUT_SECONDS") or 10.0),
            novu_max_attempts=int(env.get("NOVU_MAX_ATTEMPTS") or 10),
            subscription_allow_loopback_http=_bool(env.get("ZIXLY_SUBSCRIPTIONS_ALLOW_LOOPBACK_HTTP"), False),
            subscription_tenant_concurrency=int(env.get("ZIXLY_SUBSCRIPTION_TENANT_CONCURRENCY", 4)),
            subscription_disable_after_messages=int(env.get("ZIXLY_SUBSCRIPTION_DISABLE_AFTER_MESSAGES", 20)),
            subscription_disable_after_seconds=int(env.get("ZIXLY_SUBSCRIPTION_DISABLE_AFTER_SECONDS", 5 * 86400)),
            subscription_secret_grace_seconds=int(env.get("ZIXLY_SUBSCRIPTION_SECRET_GRACE_SECONDS", 86400)),
            console_oidc_client_id=env.get("ZIXLY_CONSOLE_OIDC_CLIENT_ID") or None,
            console_oidc_client_secret=env.get("ZIXLY_CONSOLE_OIDC_CLIENT_SECRET") or None,
            console_secret_key=env.get("ZIXLY_CONSOLE_SECRET_KEY") or _read(home / "console-secret"),
            console_cookie_secure=_bool(env.get("ZIXLY_CONSOLE_COOKIE_SECURE"), True),
            console_session_seconds=int(env.get("ZIXLY_CONSOLE_SESSION_SECONDS") or 8 * 3600),
            console_dev_login=_bool(env.get("ZIXLY_CONSOLE_DEV_LOGIN"), False),
            console_stream_seconds=int(env.get("ZIXLY_CONSOLE_STREAM_SECONDS") or 25),
            console_max_streams=int(env.get("ZIXLY_CONSOLE_MAX_STREAMS") or 2),
        )
        if env.get("ZIXLY_SUBSCRIPTION_RETRY_SCHEDULE"):
            values["subscription_retry_schedule"] = tuple(
                float(x) for x in _list(env["ZIXLY_SUBSCRIPTION_RETRY_SCHEDULE"]))
        values.update(overrides)
        if not values["database_url"]:
            raise RuntimeError("DATABASE_URL is not set (run through `zixly dev` / `make run` for embedded defaults)")
        if not values["redis_url"]:
            raise RuntimeError("REDIS_URL is not set (run through `zixly dev` / `make run` for embedded defaults)")
        return cls(**values)
