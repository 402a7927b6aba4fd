"""Errors of the database and the broker that pass by themselves (a failover, a restart, a dropped connection,
a deadlock or serialization failure): what fails with one of them is retried with backoff, never failed for good.
"""
from __future__ import annotations

import kombu.exceptions
import redis.exceptions
from sqlalchemy import exc as sqlalchemy_exc

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    sqlalchemy_exc.OperationalError,  # includes psycopg's lost connections, deadlocks, serialization failures
    sqlalchemy_exc.InterfaceError,
    sqlalchemy_exc.DisconnectionError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    kombu.exceptions.OperationalError,
)
