"""Helpers for the fleet tests: throwaway databases, a tenant tree with one more migration, schema contents."""
from __future__ import annotations

import secrets
import shutil
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy import text
from sqlalchemy.engine import make_url

from tenancy import migrate, schemas


def libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextmanager
def fresh_database(server_url: str, prefix: str = "zixly_fleet"):
    """A new database on the server named by server_url; dropped afterwards. Yields its SQLAlchemy URL."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    with psycopg.connect(libpq(server_url), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(libpq(server_url), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


NEW_MIGRATION = '''revision = "t9999"
down_revision = "{head}"
branch_labels = None
depends_on = None
{extra}
import sqlalchemy as sa
from alembic import op


def upgrade():
    op.create_table("notes", sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
                    sa.Column("body", sa.Text, nullable=False, server_default=""))
    op.add_column("jobs", sa.Column("priority", sa.Integer, nullable=False, server_default="5"))
    op.create_index("ix_jobs_priority", "jobs", ["priority"])
{body}
'''


def tree_with_new_migration(tmp_path: Path, *, online: bool = False) -> Path:
    """A copy of the tenant tree plus t9999 (new table, new column with a default, new index). With online,
    the step declares `fleet_online` and also reads data (it counts audit rows into a note)."""
    tree = tmp_path / "tenant"
    shutil.copytree(migrate.TENANT_DIR, tree)
    extra = "fleet_online = True\n" if online else ""
    body = ("    n = op.get_bind().execute(sa.text('select count(*) from audit_log')).scalar()\n"
            "    op.execute(sa.text('insert into notes (body) values (:b)').bindparams(b=f'audit rows: {n}'))\n"
            if online else "")
    (tree / "versions" / "9999_notes.py").write_text(
        NEW_MIGRATION.format(head=migrate.tenant_head(), extra=extra, body=body))
    return tree


def schema_exists(engine, name: str) -> bool:
    with engine.connect() as conn:
        return conn.execute(text("SELECT to_regnamespace(:n) IS NOT NULL"), {"n": f'"{name}"'}).scalar()


def contents(conn, schema: str, *, timeless: bool = False) -> dict:
    """Every row of every table of the schema, as text, sorted: what a copy must keep. With timeless, columns
    holding times are left out (two schemas built at different moments have different `now()` defaults)."""
    out = {}
    for table in schemas.tables(conn, schema):
        cols = conn.execute(text(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = :s AND table_name = :t"
            " AND NOT (:timeless AND data_type LIKE 'timestamp%') ORDER BY ordinal_position"),
            {"s": schema, "t": table, "timeless": timeless}).scalars().all()
        row = "ROW(" + ", ".join(f'x."{c}"' for c in cols) + ")::text"
        out[table] = conn.exec_driver_sql(f'SELECT {row} FROM "{schema}"."{table}" x ORDER BY 1').scalars().all()
    return out
