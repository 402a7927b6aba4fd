"""One boot path for every process (API, worker, CLI): settings, database routing, Redis, Celery."""
from __future__ import annotations

import redis

from core.platform.config import Settings
from tenancy import db

_settings: Settings | None = None
_redis: redis.Redis | None = None
_aws_clients: dict = {}  # boto3 clients are thread-safe; one per service, endpoint and region


def init(settings: Settings) -> Settings:
    global _settings, _redis
    if _settings == settings:
        return settings
    _settings = settings
    db.configure(settings.database_url, pool_size=settings.db_pool_size,
                 max_overflow=settings.db_max_overflow, pool_recycle=settings.db_pool_recycle)
    _redis = redis.Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
    from core.platform.queue import configure as configure_queue

    configure_queue(settings)
    from core.platform import crypto

    crypto.configure(spec=settings.data_keys, secret_id=settings.data_keys_secret_id,
                     secrets_client=aws_client("secretsmanager") if settings.data_keys_secret_id else None)
    import core.notify.receivers  # noqa: F401  (connects the notification receivers to the domain signals)

    return settings


def aws_client(service: str):
    """The process's boto3 client for `service` (core.aws.client), made once: creating one costs tens of ms."""
    from core.platform import aws

    s = settings()
    key = (service, s.aws_endpoint_url, s.aws_region)
    client = _aws_clients.get(key)
    if client is None:
        client = _aws_clients.setdefault(key, aws.client(service, s))
    return client


def settings() -> Settings:
    if _settings is None:
        raise RuntimeError("core.platform.runtime.init(settings) has not been called")
    return _settings


def redis_client() -> redis.Redis:
    settings()
    return _redis
