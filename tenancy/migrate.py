"""Alembic for the two trees: the catalog, and the tenant tree applied to one schema at a time.

The tenant tree is driven without env.py: one cached ScriptDirectory, and each schema migrated inside the
caller's transaction with `SET LOCAL search_path`, so a failed migration leaves nothing behind.
"""
from __future__ import annotations

import functools
import io
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


def upgrade_catalog(engine: Engine, revision: str = "head") -> None:
    cfg = _config(CATALOG_DIR)
    with engine.begin() as conn:
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

    with EnvironmentContext(_config(location), script, fn=steps, destination_rev=target) as env:
        env.configure(connection=conn, version_table_schema=schema, transactional_ddl=True)
        env.run_migrations()
        revision = env.get_context().get_current_revision()
    conn.exec_driver_sql("SET LOCAL search_path TO pg_catalog")
    return revision


@functools.lru_cache(maxsize=8)
def _head_script(location: str, head: str) -> str:
    """The whole tenant tree rendered once as SQL (Alembic offline mode), for unqualified tables."""
    script = _script(location)
    buffer = io.StringIO()

    def steps(rev, context):
        return script._upgrade_revs("head", rev)

    with EnvironmentContext(_config(Path(location)), script, fn=steps, as_sql=True, destination_rev="head",
                            starting_rev=None) as env:
        env.configure(url="postgresql://", dialect_name="postgresql", output_buffer=buffer,
                      transactional_ddl=False, literal_binds=True)
        env.run_migrations()
    return buffer.getvalue()


def create_tenant_schema(conn: Connection, schema: str, *, location: Path | None = None) -> str:
    """Create a schema at the tenant head in one round trip: no per-tenant replay of Alembic's history.

    The SQL is what Alembic itself renders for the tree, so the result is the schema a migration from
    scratch produces (a test compares the two catalogs); the version table records the head as usual.
    """
    location = str(location or TENANT_DIR)
    head = tenant_head(Path(location))
    quoted = quote_ident(schema)
    conn.exec_driver_sql(f"CREATE SCHEMA {quoted}; SET LOCAL search_path TO {quoted};\n"
                         + _head_script(location, head) + "\nSET LOCAL search_path TO pg_catalog;")
    return head
