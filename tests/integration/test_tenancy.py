"""The tenancy core on its own: fail closed, derived schema names, all-or-nothing provisioning."""
import shutil

import pytest
from sqlalchemy import func, select, text

from core.platform.models import AuditEntry
from tenancy import provisioning
from tenancy.context import InvalidSlug, NoTenantContext, current_tenant, schema_for, tenant_context
from tenancy.db import catalog_session, get_router, tenant_session
from tenancy.migrate import TENANT_DIR, tenant_head
from tenancy.models import Tenant
from tests.conftest import unique_slug


def schema_exists(name):
    with get_router().catalog_engine.connect() as conn:
        return conn.execute(text("select 1 from pg_namespace where nspname = :n"), {"n": name}).first() is not None


def test_no_tenant_context_raises(app):
    with pytest.raises(NoTenantContext):
        current_tenant()
    with pytest.raises(NoTenantContext):
        tenant_session()


def test_tenant_table_through_catalog_session_is_refused(app):
    with catalog_session() as session, pytest.raises(NoTenantContext):
        session.scalar(select(func.count()).select_from(AuditEntry))


def test_tenant_session_reads_only_its_schema(app, make_tenant):
    a, b = make_tenant("a"), make_tenant("b")
    with tenant_context(a.ref), tenant_session() as s:
        a_rows = s.scalars(select(AuditEntry.target_id)).all()
    with tenant_context(b.ref), tenant_session() as s:
        b_rows = s.scalars(select(AuditEntry.target_id)).all()
    assert set(a_rows) == {a.slug} and set(b_rows) == {b.slug}


def test_context_is_restored_after_block(app, make_tenant):
    a, b = make_tenant("a"), make_tenant("b")
    with tenant_context(a.ref):
        with tenant_context(b.ref):
            assert current_tenant().slug == b.slug
        assert current_tenant().slug == a.slug
    with pytest.raises(NoTenantContext):
        current_tenant()


@pytest.mark.parametrize("slug", ["", "ab", "1abc", "Abc", "a_b", "a" * 41, "abc; drop", 'a"b', None, 42])
def test_slugs_are_validated_before_any_schema_name(slug):
    with pytest.raises(InvalidSlug):
        schema_for(slug)


def test_schema_name_is_derived():
    assert schema_for("acme-co") == "t_acme_co"


def test_failed_migration_leaves_no_schema_and_a_failed_row(app, tmp_path, monkeypatch):
    broken = tmp_path / "tenant"
    shutil.copytree(TENANT_DIR, broken)
    (broken / "versions" / "9999_boom.py").write_text(
        f'revision = "t9999"\ndown_revision = "{tenant_head()}"\nbranch_labels = None\ndepends_on = None\n'
        "from alembic import op\n\n"
        "def upgrade():\n    op.execute('create table half_done (id int)')\n    op.execute('select 1/0')\n")
    monkeypatch.setattr(provisioning, "TENANT_SCRIPT_LOCATION", broken)
    slug = unique_slug("fail")
    with pytest.raises(provisioning.ProvisioningFailed):
        provisioning.create_tenant(get_router(), slug=slug, name="Fails")
    assert not schema_exists(schema_for(slug))
    with catalog_session() as s:
        row = s.scalar(select(Tenant).where(Tenant.slug == slug))
        assert row.status == "failed" and "DivisionByZero" in row.failure_reason
        keys = s.scalar(text("select count(*) from catalog.api_keys where tenant_id = :i"), {"i": row.id})
    assert keys == 0
    monkeypatch.setattr(provisioning, "TENANT_SCRIPT_LOCATION", None)
    tenant, _, secret = provisioning.create_tenant(get_router(), slug=slug, name="Fails no more")
    assert tenant.status == "active" and secret and schema_exists(schema_for(slug))


def test_failed_tenant_via_api_is_problem_and_retry_succeeds(client, staff_headers, tmp_path, monkeypatch):
    broken = tmp_path / "tenant"
    shutil.copytree(TENANT_DIR, broken)
    (broken / "versions" / "9999_boom.py").write_text(
        f'revision = "t9999"\ndown_revision = "{tenant_head()}"\nbranch_labels = None\ndepends_on = None\n'
        "from alembic import op\n\ndef upgrade():\n    op.execute('select 1/0')\n")
    monkeypatch.setattr(provisioning, "TENANT_SCRIPT_LOCATION", broken)
    slug = unique_slug("apifail")
    r = client.post("/v1/staff/tenants", json={"slug": slug, "name": "x"}, headers=staff_headers)
    assert r.status_code == 500 and r.content_type == "application/problem+json"
    assert "Traceback" not in r.get_data(as_text=True)
    assert client.get(f"/v1/staff/tenants/{slug}", headers=staff_headers).get_json()["status"] == "failed"
    monkeypatch.setattr(provisioning, "TENANT_SCRIPT_LOCATION", None)
    r = client.post("/v1/staff/tenants", json={"slug": slug, "name": "x"}, headers=staff_headers)
    assert r.status_code == 201 and r.get_json()["status"] == "active"


def test_tenants_are_placed_on_a_shard(app, make_tenant):
    t = make_tenant()
    assert t.row.shard == "default"


CATALOG_QUERIES = {
    "columns": """select table_name, column_name, data_type, character_maximum_length, is_nullable,
                         column_default, is_identity from information_schema.columns where table_schema = :s""",
    "constraints": """select conrelid::regclass::text, conname, contype, pg_get_constraintdef(oid)
                      from pg_constraint where connamespace = cast(:s as regnamespace)""",
    "indexes": "select tablename, indexname, indexdef from pg_indexes where schemaname = :s",
    "versions": "select version_num from {schema}.alembic_version",
}


def describe_schema(conn, schema):
    out = {}
    for name, query in CATALOG_QUERIES.items():
        rows = conn.execute(text(query.format(schema=f'"{schema}"')), {"s": schema}).all()
        out[name] = sorted(tuple(str(v).replace(schema, "<schema>") for v in row) for row in rows)
    out["data"] = sorted(conn.execute(text(f'select name, enabled from "{schema}".workflow_settings')).all())
    return out


def test_fast_provisioning_equals_a_schema_migrated_from_scratch(app, make_tenant):
    from tenancy.migrate import upgrade_tenant

    fast = make_tenant("fast")  # provisioned from the rendered head script
    slow = "t_scratch_" + fast.slug.replace("-", "_")[-12:]
    with get_router().catalog_engine.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{slow}"')
        upgrade_tenant(conn, slow)  # every migration, one by one, online
    with get_router().catalog_engine.connect() as conn:
        a, b = describe_schema(conn, fast.ref.schema), describe_schema(conn, slow)
    with get_router().catalog_engine.begin() as conn:
        conn.exec_driver_sql(f'DROP SCHEMA "{slow}" CASCADE')
    assert a["columns"] and a["indexes"] and a["constraints"]
    assert a == b
