"""What a tenant schema is made of, read from pg_catalog and information_schema, and how to copy its rows.

`describe()` is the structural fingerprint used to prove a pooled or moved schema equals one migrated from
scratch: tables, columns with types and defaults, identity, constraints, indexes, sequences, triggers,
functions, views, enum types, comments and privileges, with the schema's own name blanked out.
"""
from __future__ import annotations

from psycopg import sql
from sqlalchemy import Connection, text

from tenancy.migrate import quote_ident

VERSION_TABLE = "alembic_version"

_DESCRIBE = {
    "tables": """
        SELECT c.relname, c.relkind, c.relpersistence, coalesce(c.reloptions::text, ''),
               pg_get_userbyid(c.relowner), coalesce(c.relacl::text, '')
        FROM pg_class c WHERE c.relnamespace = cast(:s AS regnamespace) AND c.relkind IN ('r','p','v','m','f','S')""",
    "columns": """
        SELECT table_name, column_name, ordinal_position, data_type, udt_name, character_maximum_length,
               numeric_precision, numeric_scale, datetime_precision, is_nullable, column_default, is_identity,
               identity_generation, identity_start, identity_increment, identity_maximum, identity_minimum,
               identity_cycle, is_generated, generation_expression, collation_name
        FROM information_schema.columns WHERE table_schema = :s""",
    "constraints": """
        SELECT conrelid::regclass::text, conname, contype, pg_get_constraintdef(oid), condeferrable,
               condeferred, convalidated
        FROM pg_constraint WHERE connamespace = cast(:s AS regnamespace)""",
    "indexes": "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = :s",
    "sequences": """
        SELECT sequencename, data_type::text, start_value, min_value, max_value, increment_by, cycle, cache_size
        FROM pg_sequences WHERE schemaname = :s""",
    "sequence_owners": """
        SELECT s.relname, t.relname, a.attname, d.deptype
        FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
        JOIN pg_class t ON t.oid = d.refobjid JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid
        WHERE s.relnamespace = cast(:s AS regnamespace)""",
    "triggers": """
        SELECT c.relname, t.tgname, pg_get_triggerdef(t.oid)
        FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
        WHERE c.relnamespace = cast(:s AS regnamespace) AND NOT t.tgisinternal""",
    "functions": """
        SELECT p.proname, pg_get_function_identity_arguments(p.oid), pg_get_functiondef(p.oid)
        FROM pg_proc p WHERE p.pronamespace = cast(:s AS regnamespace) AND p.prokind IN ('f','p')""",
    "views": "SELECT viewname, definition FROM pg_views WHERE schemaname = :s",
    "types": """
        SELECT t.typname, t.typtype, coalesce(string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder), '')
        FROM pg_type t LEFT JOIN pg_enum e ON e.enumtypid = t.oid
        WHERE t.typnamespace = cast(:s AS regnamespace) AND t.typtype IN ('e','d','c')
          AND NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.reltype = t.oid)
        GROUP BY t.typname, t.typtype""",
    "comments": """
        SELECT c.relname, d.objsubid, d.description
        FROM pg_description d JOIN pg_class c ON c.oid = d.objoid AND d.classoid = 'pg_class'::regclass
        WHERE c.relnamespace = cast(:s AS regnamespace)""",
}


def _blank(value, schema: str) -> str:
    return str(value).replace(quote_ident(schema), "<schema>").replace(schema + ".", "<schema>.")


def describe(conn: Connection, schema: str) -> dict[str, list[tuple]]:
    """The structure of `schema`, sorted, with its name replaced by <schema> so two schemas compare."""
    out = {}
    for name, query in _DESCRIBE.items():
        rows = conn.execute(text(query), {"s": schema}).all()
        out[name] = sorted(tuple(_blank(v, schema) for v in row) for row in rows)
    return out


def tables(conn: Connection, schema: str) -> list[str]:
    """The schema's tables, each after the tables it references (FK order), the version table last."""
    names = list(conn.execute(text(
        "SELECT relname FROM pg_class WHERE relnamespace = cast(:s AS regnamespace) AND relkind IN ('r','p')"
        " AND NOT relispartition ORDER BY relname"), {"s": schema}).scalars())
    edges = conn.execute(text(
        "SELECT DISTINCT c.relname, r.relname FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid"
        " JOIN pg_class r ON r.oid = k.confrelid WHERE k.contype = 'f' AND k.connamespace = cast(:s AS regnamespace)"
        " AND r.relnamespace = k.connamespace AND c.oid <> r.oid"), {"s": schema}).all()
    needs = {n: {ref for child, ref in edges if child == n} for n in names}
    ordered: list[str] = []
    while needs:
        ready = sorted(n for n, deps in needs.items() if not deps - set(ordered))
        if not ready:
            raise RuntimeError(f"foreign keys form a cycle among {sorted(needs)}")
        ordered += ready
        for n in ready:
            del needs[n]
    return [n for n in ordered if n != VERSION_TABLE] + ([VERSION_TABLE] if VERSION_TABLE in names else [])


def copyable_columns(conn: Connection, schema: str, table: str) -> list[str]:
    """Columns COPY can write: not dropped, not generated."""
    return list(conn.execute(text(
        "SELECT attname FROM pg_attribute WHERE attrelid = cast(:t AS regclass) AND attnum > 0"
        " AND NOT attisdropped AND attgenerated = '' ORDER BY attnum"),
        {"t": f"{quote_ident(schema)}.{quote_ident(table)}"}).scalars())


def row_counts(conn: Connection, schema: str, names: list[str]) -> dict[str, int]:
    return {t: conn.exec_driver_sql(f"SELECT count(*) FROM {quote_ident(schema)}.{quote_ident(t)}").scalar()
            for t in names}


def checksums(conn: Connection, schema: str, names: list[str]) -> dict[str, str]:
    """md5 of each table's rows in text form, in a fixed order: equal data gives equal sums."""
    return {t: conn.exec_driver_sql(
        f"SELECT coalesce(md5(string_agg(x::text, E'\\n' ORDER BY x::text)), '') "
        f"FROM {quote_ident(schema)}.{quote_ident(t)} x").scalar() for t in names}


def sequence_values(conn: Connection, schema: str) -> dict[str, tuple[int, bool]]:
    names = conn.execute(text("SELECT sequencename FROM pg_sequences WHERE schemaname = :s ORDER BY 1"),
                         {"s": schema}).scalars().all()
    return {n: tuple(conn.exec_driver_sql(
        f"SELECT last_value, is_called FROM {quote_ident(schema)}.{quote_ident(n)}").one()) for n in names}


def copy_rows(src: Connection, dst: Connection, src_schema: str, dst_schema: str, names: list[str],
              on_table=None) -> None:
    """Stream every row of `names` from src to dst with binary COPY (dst tables must be empty), then set the
    sequences to the source's values. Both connections stay in their callers' transactions."""
    src_raw, dst_raw = src.connection.driver_connection, dst.connection.driver_connection
    for table in names:
        columns = copyable_columns(src, src_schema, table)
        cols = sql.SQL(", ").join(map(sql.Identifier, columns))
        out = sql.SQL("COPY {}.{} ({}) TO STDOUT (FORMAT BINARY)").format(
            sql.Identifier(src_schema), sql.Identifier(table), cols)
        into = sql.SQL("COPY {}.{} ({}) FROM STDIN (FORMAT BINARY)").format(
            sql.Identifier(dst_schema), sql.Identifier(table), cols)
        with src_raw.cursor() as sc, dst_raw.cursor() as dc, sc.copy(out) as reader, dc.copy(into) as writer:
            for block in reader:
                writer.write(block)
        if on_table:
            on_table(table)
    for name, (value, called) in sequence_values(src, src_schema).items():
        dst.execute(text("SELECT setval(cast(:q AS regclass), :v, :c)"),
                    {"q": f"{quote_ident(dst_schema)}.{quote_ident(name)}", "v": value, "c": called})
