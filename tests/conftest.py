"""Real PostgreSQL, Redis and moto for the whole suite: the embedded servers, or the ones named by env.

A fresh database is created per run (and dropped after), so a developer's `make run` data is never touched.
"""
from __future__ import annotations

import itertools
import os
import secrets
import uuid
from pathlib import Path

import psycopg
import pytest
import redis as redis_lib
from psycopg import sql
from sqlalchemy.engine import make_url

from core import bootstrap
from core.platform.config import Settings
from devstack import DevStack, EmbeddedPostgres
from devstack.pgbouncer import PgBouncer

ROOT = Path(__file__).resolve().parent.parent
TEST_HOME = Path(os.environ.get("ZIXLY_TEST_HOME") or ROOT / ".zixly" / "test")  # one per concurrent run


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def servers():
    stack = DevStack(TEST_HOME, persistent=False)
    env = stack.start(progress=lambda msg: None)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):  # moto takes any; boto3 needs some to sign
        if name in env:
            os.environ.setdefault(name, env[name])
    yield env
    stack.stop()


@pytest.fixture(scope="session")
def second_server(servers):
    """A second PostgreSQL server (ZIXLY_TEST_SECOND_DATABASE_URL, or another embedded one) for shard tests."""
    url = os.environ.get("ZIXLY_TEST_SECOND_DATABASE_URL")
    pg = None
    if not url:
        pg = EmbeddedPostgres(TEST_HOME / "pg2").start()
        url = pg.url
    yield url
    if pg is not None:
        pg.stop()


@pytest.fixture(scope="session")
def database_url(servers):
    base = servers["DATABASE_URL"]
    name = f"zixly_test_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(_libpq(base), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    bouncer = None
    if os.environ.get("ZIXLY_TEST_THROUGH_PGBOUNCER"):  # `make test` runs the isolation tests a second time so
        bouncer = PgBouncer(TEST_HOME / "pgbouncer", base, pool_size=2).start()  # (tests/pooler)
    yield bouncer.url(name) if bouncer else make_url(base).set(database=name).render_as_string(hide_password=False)
    from tenancy.db import get_router

    try:
        get_router().dispose()
    except RuntimeError:
        pass
    if bouncer is not None:
        bouncer.stop()
    with psycopg.connect(_libpq(base), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def jwt_keys(tmp_path_factory):
    from api.tokens import generate_signing_key

    home = tmp_path_factory.mktemp("jwt")
    generate_signing_key(home)
    return home


@pytest.fixture(scope="session")
def settings(servers, database_url, jwt_keys):
    redis_url = servers["REDIS_URL"].rsplit("/", 1)[0] + "/9"
    redis_lib.Redis.from_url(redis_url).flushdb()
    from core.platform.crypto import generate_key

    return Settings(database_url=database_url, redis_url=redis_url, aws_endpoint_url=servers["AWS_ENDPOINT_URL"],
                    jwt_public_key_file=str(jwt_keys / "jwt-public.pem"), db_pool_size=5, db_max_overflow=10,
                    data_keys=f"test1:{generate_key()}", metrics_token="test-metrics-token",
                    # every test client calls from 127.0.0.1, and many tests send bad credentials on purpose:
                    # the failed-authentication budget is tested on its own (tests/api/test_auth_failures.py)
                    auth_failure_limit="100000/minute")


@pytest.fixture(scope="session")
def app(settings):
    from api.app import create_app
    from tenancy.db import get_router
    from tenancy.migrate import upgrade_catalog

    bootstrap.init(settings)
    upgrade_catalog(get_router().catalog_engine)
    from core.platform import aws

    aws.bootstrap(settings, bucket=settings.artifacts_bucket)  # queues and bucket, as `make run` has them
    return create_app(settings)


@pytest.fixture()
def client(app):
    return app.test_client()


_counter = itertools.count()


def unique_slug(prefix: str = "t") -> str:
    return f"{prefix}-{next(_counter)}-{uuid.uuid4().hex[:8]}"


class TenantHandle:
    def __init__(self, tenant, key_secret):
        from tenancy.apikeys import tenant_ref

        self.row, self.ref, self.slug = tenant, tenant_ref(tenant), tenant.slug
        self.admin_key = key_secret

    @property
    def headers(self):
        return {"X-API-Key": self.admin_key}


@pytest.fixture()
def make_tenant(app):
    from core.platform.actors import Actor
    from core.tenants import service as tenants

    def factory(prefix="t", plan="free"):
        tenant, _key, secret = tenants.create_tenant(slug=unique_slug(prefix), name=f"{prefix} Ltd", plan=plan,
                                                     actor=Actor("staff", "pytest"))
        return TenantHandle(tenant, secret)

    return factory


@pytest.fixture()
def tokens(settings, jwt_keys):
    from api.tokens import mint

    def make(*, staff=False, tenant=None, role="ADMIN", ttl=600, key_file=None, audience=None, issuer=None):
        audience = audience or (settings.jwt_staff_audience if staff else settings.jwt_audience)
        return mint(key_file or jwt_keys / "jwt-private.pem", issuer=issuer or settings.jwt_issuer,
                    audience=audience, subject="staff-1" if staff else "user-1", staff=staff, tenant=tenant,
                    role=role, ttl=ttl)

    return make


@pytest.fixture()
def staff_headers(tokens):
    return {"Authorization": f"Bearer {tokens(staff=True)}"}
