"""Alembic for the two trees: the catalog, and the tenant tree applied to one schema at a time.

The tenant tree is driven without env.py: one cached ScriptDirectory, and each schema migrated inside the
caller's transaction with `SET LOCAL search_path`, so a failed migration leaves nothing behind.
"""
from __future__ import annotations

import functools
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
