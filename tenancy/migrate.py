"""Alembic for the two trees: the catalog, and the tenant tree applied to one schema at a time.

The tenant tree is driven without env.py: one cached ScriptDirectory, and each schema migrated inside the
caller's transaction with `SET LOCAL search_path`, so a failed migration leaves nothing behind.
"""
from __future__ import annotations

import functools
import io
import threading
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.script import ScriptDirectory
from psycopg import sql
from sqlalchemy import Connection, Engine

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
CATALOG_DIR = MIGRATIONS / "catalog"
TENANT_DIR = MIGRATIONS / "tenant"


def quote_ident(name: str) -> str:
    return sql.Identifier(name).as_string(None)


def _config(location: Path) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(location))
    return cfg


def catalog_head() -> str:
    return _script(str(CATALOG_DIR)).get_current_head()


def upgrade_catalog(engine: Engine, revision: str = "head") -> None:
    cfg = _config(CATALOG_DIR)
    with ALEMBIC_LOCK, engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


@functools.lru_cache(maxsize=8)
def _script(location: str) -> ScriptDirectory:
    return ScriptDirectory.from_config(_config(Path(location)))


def tenant_head(location: Path | None = None) -> str:
    return _script(str(location or TENANT_DIR)).get_current_head()


def upgrade_tenant(conn: Connection, schema: str, *, target: str = "head", location: Path | None = None) -> str:
    """Migrate one tenant schema to `target` inside `conn`'s open transaction; return the new revision."""
    location = location or TENANT_DIR
    script = _script(str(location))
    conn.exec_driver_sql(f"SET LOCAL search_path TO {quote_ident(schema)}")

    def steps(rev, context):
        return script._upgrade_revs(target, rev)

    with ALEMBIC_LOCK, EnvironmentContext(_config(location), script, fn=steps, destination_rev=target) as env:
        env.configure(connection=conn, version_table_schema=schema, transactional_ddl=True)
        env.run_migrations()
        revision = env.get_context().get_current_revision()
    conn.exec_driver_sql("SET LOCAL search_path TO pg_catalog")
    return revision


# Alembic installs its `op`/`context` proxies as module globals while it runs, so two threads must never run it
# at once: fleet workers render or migrate under this lock (rendered SQL is then run without it).
ALEMBIC_LOCK = threading.RLock()


@functools.lru_cache(maxsize=64)
def _rendered(location: str, start: str | None, dest: str) -> str:
    """The tenant tree from `start` (None: empty schema) to `dest`, rendered once as SQL by Alembic's offline
    mode, for unqualified tables; the version table update is part of it."""
    script = _script(location)
    buffer = io.StringIO()

    def steps(rev, context):
        return script._upgrade_revs(dest, rev)

    with ALEMBIC_LOCK, EnvironmentContext(_config(Path(location)), script, fn=steps, as_sql=True,
                                          destination_rev=dest, starting_rev=start) as env:
        env.configure(url="postgresql://", dialect_name="postgresql", output_buffer=buffer,
                      transactional_ddl=False, literal_binds=True)
        env.run_migrations()
    return buffer.getvalue()


def upgrade_sql(start: str | None, dest: str = "head", *, location: Path | None = None) -> str | None:
    """SQL taking a schema from `start` to `dest` in one round trip, or None when a step on the way declares
    `fleet_online = True` (it reads data, so it must run online, through `upgrade_tenant`)."""
    location = str(location or TENANT_DIR)
    script = _script(location)
    dest = script.get_current_head() if dest == "head" else dest
    if start == dest:
        return ""
    for rev in script.iterate_revisions(dest, start):
        if getattr(rev.module, "fleet_online", False):
            return None
    return _rendered(location, start, dest)


def create_tenant_schema(conn: Connection, schema: str, *, location: Path | None = None,
                         revision: str = "head", prelude: str = "") -> str:
    """Create a schema at the tenant head (or `revision`) in one round trip: no per-tenant replay of history.

    The SQL is what Alembic itself renders for the tree, so the result is the schema a migration from
    scratch produces (a test compares the two catalogs); the version table records the head as usual.
    `prelude` is SQL to run first in the same transaction (the Citus setting that distributes the schema).
    """
    location = str(location or TENANT_DIR)
    target = tenant_head(Path(location)) if revision == "head" else revision
    quoted = quote_ident(schema)
    conn.exec_driver_sql(prelude + f"CREATE SCHEMA {quoted}; SET LOCAL search_path TO {quoted};\n"
                         + _rendered(location, None, target) + "\nSET LOCAL search_path TO pg_catalog;")
    return target
