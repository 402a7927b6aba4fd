"""Engines and sessions: one engine per shard, the tenant schema applied per statement.

Tenant tables are declared in the placeholder schema `__tenant__`. A tenant session binds its shard's
engine with `schema_translate_map={"__tenant__": <schema>}`, so SQLAlchemy writes the real schema into each
statement: nothing is SET on the connection, a pooled connection carries no tenant state, and it is safe
behind a transaction-pooling PgBouncer. A statement that still names the placeholder (a tenant table reached
without a tenant session) is refused before it reaches the server.
"""
from __future__ import annotations

import os
import threading
from contextlib import contextmanager

import psycopg
from psycopg import sql
from sqlalchemy import create_engine, event, select
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from tenancy.base import TENANT_SCHEMA
from tenancy.context import NoTenantContext, current_tenant
from tenancy.models import Shard


def normalize_url(url: str) -> str:
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def resolve_dsn(dsn: str | None) -> str | None:
    """A shard's `dsn` column: NULL is the catalog's database, `env:NAME` reads the URL from that variable."""
    if not dsn:
        return None
    url = os.environ[dsn[4:]] if dsn.startswith("env:") else dsn
    return normalize_url(url)


_UNROUTED = (TENANT_SCHEMA + ".", f'"{TENANT_SCHEMA}".')  # the schema itself, not labels derived from it


def _refuse_unrouted(conn, cursor, statement, parameters, context, executemany):
    if TENANT_SCHEMA in statement and any(marker in statement for marker in _UNROUTED):
        raise NoTenantContext("a tenant table was queried without a tenant session (no tenant in context)")


def make_engine(url: str, *, pool_size: int, max_overflow: int, pool_recycle: int) -> Engine:
    engine = create_engine(
        normalize_url(url),
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_recycle=pool_recycle,
        pool_timeout=10,
        # No server-side prepared statements: they break transaction pooling, and with one statement text
        # per schema they would pile up on each connection as it touches more tenants.
        connect_args={"prepare_threshold": None, "connect_timeout": 5},
    )
    event.listen(engine, "before_cursor_execute", _refuse_unrouted)
    return engine


class Router:
    """Knows the catalog database and every shard's engine; hands out catalog and tenant sessions."""

    def __init__(self, catalog_url: str, *, pool_size: int = 5, max_overflow: int = 5, pool_recycle: int = 1800):
        self._pool_args = dict(pool_size=pool_size, max_overflow=max_overflow, pool_recycle=pool_recycle)
        self.catalog_url = normalize_url(catalog_url)
        self.catalog_engine = make_engine(self.catalog_url, **self._pool_args)
        self._shards: dict[str, Engine] = {}
        self._translated: dict[tuple[str, str], Engine] = {}
        self._lock = threading.Lock()
        self.capabilities: dict = {}  # per-shard facts found once per process (tenancy.citus)
        self._catalog_sessions = sessionmaker(self.catalog_engine, expire_on_commit=False)

    def catalog_session(self) -> Session:
        return self._catalog_sessions()

    def shard_engine(self, shard: str) -> Engine:
        engine = self._shards.get(shard)
        if engine is None:
            with self._lock:
                engine = self._shards.get(shard) or self._open_shard(shard)
                self._shards[shard] = engine
        return engine

    def shard_url(self, name: str) -> str | None:
        """The shard's database URL, or None when the shard is the catalog's own database."""
        with self.catalog_session() as session:
            shard = session.scalar(select(Shard).where(Shard.name == name))
        if shard is None:
            raise LookupError(f"unknown shard {name!r}")
        return resolve_dsn(shard.dsn)

    def _open_shard(self, name: str) -> Engine:
        url = self.shard_url(name)
        # Bounded per server: pool_size + max_overflow connections per process and shard, each recycled after
        # pool_recycle seconds so a backend's relation and catalog caches (which grow with every schema it
        # touches) are dropped with it.
        return self.catalog_engine if url is None else make_engine(url, **self._pool_args)

    def databases(self) -> dict[str, list[str]]:
        """Every database holding tenants: its URL and the shards on it (the catalog's own database included)."""
        with self.catalog_session() as session:
            shards = session.scalars(select(Shard)).all()
        found: dict[str, list[str]] = {}
        for shard in shards:
            found.setdefault(resolve_dsn(shard.dsn) or self.catalog_url, []).append(shard.name)
        return found

    @staticmethod
    def listen(url: str, channel: str) -> psycopg.Connection:
        """A dedicated connection (autocommit, outside every pool) LISTENing on `channel` of the database at `url`.
        Never through a transaction pooler: LISTEN needs a session of its own."""
        libpq = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        connection = psycopg.connect(libpq, autocommit=True, connect_timeout=5)
        connection.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
        return connection

    @property
    def pool_args(self) -> dict:
        return dict(self._pool_args)

    def tenant_engine(self, shard: str, schema: str) -> Engine:
        key = (shard, schema)
        engine = self._translated.get(key)
        if engine is None:
            engine = self.shard_engine(shard).execution_options(schema_translate_map={TENANT_SCHEMA: schema})
            if len(self._translated) > 10_000:  # bounded: option engines are cheap to rebuild
                self._translated.clear()
            self._translated[key] = engine
        return engine

    def tenant_session(self) -> Session:
        tenant = current_tenant()  # raises NoTenantContext: fail closed
        return Session(self.tenant_engine(tenant.shard, tenant.schema), expire_on_commit=False)

    def dispose(self) -> None:
        for engine in {id(e): e for e in [self.catalog_engine, *self._shards.values()]}.values():
            engine.dispose()
        self._shards.clear()
        self._translated.clear()
        self.capabilities.clear()


_router: Router | None = None


def configure(catalog_url: str, **pool_args) -> Router:
    global _router
    if _router is not None:
        _router.dispose()
    _router = Router(catalog_url, **pool_args)
    return _router


def get_router() -> Router:
    if _router is None:
        raise RuntimeError("tenancy is not configured: call tenancy.db.configure(DATABASE_URL) first")
    return _router


def catalog_session() -> Session:
    return get_router().catalog_session()


def tenant_session() -> Session:
    return get_router().tenant_session()


@contextmanager
def tenant_transaction():
    """A tenant session inside one transaction, committed on success."""
    with tenant_session() as session, session.begin():
        yield session


@contextmanager
def tenant_autocommit():
    """A Core connection to the current tenant's schema in autocommit mode: each statement is its own transaction,
    in one round trip (no BEGIN, no COMMIT). Only for changes that are whole in one statement."""
    tenant = current_tenant()  # raises NoTenantContext: fail closed
    with get_router().tenant_engine(tenant.shard, tenant.schema).connect() as connection:
        yield connection.execution_options(isolation_level="AUTOCOMMIT")


@contextmanager
def catalog_transaction():
    with catalog_session() as session, session.begin():
        yield session
