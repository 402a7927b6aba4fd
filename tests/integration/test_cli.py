"""The `zixly` CLI against the test database: tenant lifecycle, tokens, and fleet `db upgrade`."""
import shutil

import pytest
from click.testing import CliRunner
from sqlalchemy import select, text

from core import bootstrap
from tenancy import migrate
from tenancy.db import catalog_session, get_router
from tenancy.models import Tenant
from tests.conftest import unique_slug
from zixly_cli.main import main


@pytest.fixture()
def cli(settings, jwt_keys, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    monkeypatch.setenv("ZIXLY_JWT_PUBLIC_KEY_FILE", settings.jwt_public_key_file)
    monkeypatch.setenv("ZIXLY_JWT_PRIVATE_KEY_FILE", str(jwt_keys / "jwt-private.pem"))
    yield CliRunner()
    bootstrap.init(settings)


def test_tenant_lifecycle_from_the_cli(cli, client):
    slug = unique_slug("cli")
    r = cli.invoke(main, ["tenants", "create", slug, "--plan", "pro"])
    assert r.exit_code == 0, r.output
    key = r.output.split("(shown once): ")[1].strip()
    assert client.get("/v1/tenant", headers={"X-API-Key": key}).get_json()["plan"] == "pro"
    assert slug in cli.invoke(main, ["tenants", "list"]).output
    for action, status in (("suspend", "suspended"), ("resume", "active"), ("archive", "archived"),
                           ("restore", "active")):
        r = cli.invoke(main, ["tenants", action, slug])
        assert r.exit_code == 0 and f"is {status}" in r.output, r.output
    r = cli.invoke(main, ["tenants", "create", "Not_A_Slug"])
    assert r.exit_code != 0


def test_auth_token_is_accepted_by_the_api(cli, client, make_tenant):
    t = make_tenant()
    staff = cli.invoke(main, ["auth", "token", "--staff"]).output.strip()
    assert client.get("/v1/staff/tenants", headers={"Authorization": f"Bearer {staff}"}).status_code == 200
    user = cli.invoke(main, ["auth", "token", "--tenant", t.slug, "--role", "VIEWER"]).output.strip()
    assert client.get("/v1/tenant", headers={"Authorization": f"Bearer {user}"}).get_json()["slug"] == t.slug
    assert cli.invoke(main, ["auth", "token"]).exit_code != 0


def test_db_upgrade_migrates_every_tenant_and_names_failures(cli, make_tenant, tmp_path, monkeypatch):
    tenants = [make_tenant("fleet") for _ in range(3)]
    head = migrate.tenant_head()
    tree = tmp_path / "tenant"
    shutil.copytree(migrate.TENANT_DIR, tree)
    (tree / "versions" / "9999_notes.py").write_text(
        f'revision = "t9999"\ndown_revision = "{head}"\nbranch_labels = None\ndepends_on = None\n'
        "from alembic import op\nimport sqlalchemy as sa\n\n"
        "def upgrade():\n    op.create_table('notes', sa.Column('id', sa.Integer, primary_key=True))\n")
    monkeypatch.setattr(migrate, "TENANT_DIR", tree)
    broken = tenants[1]
    with get_router().catalog_engine.begin() as conn:  # make one tenant fail: the table already exists
        conn.exec_driver_sql(f'CREATE TABLE "{broken.ref.schema}".notes (id int)')
    r = cli.invoke(main, ["db", "upgrade"])
    assert r.exit_code == 1, r.output
    assert f"FAILED {broken.slug}" in r.output
    with catalog_session() as s:
        revs = dict(s.execute(select(Tenant.slug, Tenant.schema_revision)
                              .where(Tenant.slug.in_([t.slug for t in tenants]))).all())
    assert revs[tenants[0].slug] == revs[tenants[2].slug] == "t9999"
    assert revs[broken.slug] == head
    with get_router().catalog_engine.begin() as conn:  # fix it and rerun: only the failed one is left
        conn.exec_driver_sql(f'DROP TABLE "{broken.ref.schema}".notes')
    r = cli.invoke(main, ["db", "upgrade"])
    assert r.exit_code == 0, r.output
    with get_router().catalog_engine.connect() as conn:
        assert conn.execute(text("select count(*) from pg_tables where tablename = 'notes' and schemaname = any(:s)"),
                            {"s": [t.ref.schema for t in tenants]}).scalar() == 3
    monkeypatch.undo()
    # leave the fleet as other tests expect it: drop the test-only migration again
    with get_router().catalog_engine.begin() as conn:
        for t in tenants:
            conn.exec_driver_sql(f'DROP TABLE "{t.ref.schema}".notes')
            conn.exec_driver_sql(f"UPDATE \"{t.ref.schema}\".alembic_version SET version_num = '{head}'")
            conn.exec_driver_sql(f"UPDATE catalog.tenants SET schema_revision = '{head}' WHERE slug = '{t.slug}'")


def test_dev_send_webhook_needs_a_running_stack_and_refuses_bad_input_by_name(cli, settings, tmp_path, monkeypatch,
                                                                              make_tenant):
    monkeypatch.setenv("ZIXLY_HOME", str(tmp_path))
    r = cli.invoke(main, ["dev", "send-webhook", "xero", "invoice.paid"])
    assert r.exit_code == 1 and "no running `zixly dev`" in r.output, r.output
    # what a running `zixly dev` records (devstack.dev_env); the environment set here wins over the file
    (tmp_path / "dev-env.json").write_text('{"ZIXLY_PUBLIC_BASE_URL": "http://127.0.0.1:9"}')
    for name, value in (("ZIXLY_DATA_KEYS", settings.data_keys), ("ZIXLY_PUBLIC_BASE_URL", "http://127.0.0.1:9"),
                        ("ZIXLY_PROVIDER_SIMULATOR_URL", "http://127.0.0.1:9")):
        monkeypatch.setenv(name, value)
    t = make_tenant()
    for args, says in ((["xero", "invoice.voided"], "no test event 'xero' 'invoice.voided'"),
                       (["xero", "invoice.paid", "--tenant", "nobody-here"], "no tenant 'nobody-here'"),
                       (["xero", "invoice.paid", "--tenant", t.slug], "connect an account of xero first"),
                       (["hubspot", "deal.won", "--tenant", t.slug, "--connection", "not-an-id"],
                        "this tenant has no connection not-an-id")):
        r = cli.invoke(main, ["dev", "send-webhook", *args])
        assert r.exit_code == 1 and says in r.output, r.output
