"""The process's settings, database routing, Redis client and AWS clients (set once by core.bootstrap.init)."""
from __future__ import annotations

import redis

from core.platform import aws
from core.platform.config import Settings
from tenancy import db

_settings: Settings | None = None
_redis: redis.Redis | None = None
_aws_clients: dict = {}  # boto3 clients are thread-safe; one per service, endpoint and region


def current() -> Settings | None:
    return _settings


def init(settings: Settings) -> Settings:
    """Settings, database routing and Redis for this process (core.bootstrap.init does the rest of the wiring)."""
    global _settings, _redis
    _settings = settings
    db.configure(settings.database_url, pool_size=settings.db_pool_size,
                 max_overflow=settings.db_max_overflow, pool_recycle=settings.db_pool_recycle)
    _redis = redis.Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
    return settings


def aws_client(service: str):
    """The process's boto3 client for `service` (core.platform.aws.client), made once: it costs tens of ms."""
    s = settings()
    key = (service, s.aws_endpoint_url, s.aws_region)
    client = _aws_clients.get(key)
    if client is None:
        client = _aws_clients.setdefault(key, aws.client(service, s))
    return client


def settings() -> Settings:
    if _settings is None:
        raise RuntimeError("core.bootstrap.init(settings) has not been called")
    return _settings


def redis_client() -> redis.Redis:
    settings()
    return _redis
