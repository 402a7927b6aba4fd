"""Citus schema-based sharding, behind a capability check: on a shard whose database has Citus ≥ 12, tenant
schemas are created as distributed schemas, so the Citus cluster spreads tenants over its nodes.

Nothing here runs on plain PostgreSQL: `capability()` finds no extension and every helper returns "" or
does nothing. See docs/scale.md.
"""
from __future__ import annotations

from sqlalchemy import text

from tenancy.migrate import quote_ident

MIN_VERSION = (12, 0)  # schema-based sharding (citus_schema_distribute, enable_schema_based_sharding)
CAPABILITY_SQL = "SELECT extversion FROM pg_extension WHERE extname = 'citus'"
# Run in the transaction that creates a tenant schema: CREATE SCHEMA then makes a distributed schema, and
# every table created in it becomes a single-shard table colocated with the schema's others.
SCHEMA_PRELUDE = "SET LOCAL citus.enable_schema_based_sharding TO on;\n"


def parse_version(value: str | None) -> tuple[int, ...] | None:
    if not value:
        return None
    parts = []
    for piece in value.split("-")[0].split("."):
        if not piece.isdigit():
            break
        parts.append(int(piece))
    return tuple(parts) or None


def capability(conn) -> tuple[int, ...] | None:
    """The Citus version when it supports schema-based sharding on this database, else None."""
    version = parse_version(conn.execute(text(CAPABILITY_SQL)).scalar())
    return version if version and version >= MIN_VERSION else None


def prelude(router, shard: str) -> str:
    """SQL to put before CREATE SCHEMA on this shard ("" without Citus); checked once per shard and process."""
    key = ("citus", shard)
    if key not in router.capabilities:
        with router.shard_engine(shard).connect() as conn:
            router.capabilities[key] = capability(conn)
    return SCHEMA_PRELUDE if router.capabilities[key] else ""


def distribute_sql(schema: str) -> str:
    """Make an existing (regular) schema a distributed schema; Citus moves it to a node of its choosing."""
    return f"SELECT citus_schema_distribute({_literal(schema)})"


def undistribute_sql(schema: str) -> str:
    return f"SELECT citus_schema_undistribute({_literal(schema)})"


def _literal(schema: str) -> str:
    return "'" + quote_ident(schema).replace("'", "''") + "'"


def distribute_existing(conn, schemas: list[str]) -> list[str]:
    """Distribute the given tenant schemas on a database that has Citus; return the statements issued."""
    if capability(conn) is None:
        return []
    issued = []
    for schema in schemas:
        statement = distribute_sql(schema)
        conn.exec_driver_sql(statement)
        issued.append(statement)
    return issued
