"""Migrations are history: t0004 seals the plaintext webhook secrets of rows written before sealing existed, with
its own frozen copy of the sealing format, and what it wrote opens with the service's keyring today."""
import uuid

from sqlalchemy import text

from core.platform.crypto import Keyring, generate_key
from tenancy.db import get_router
from tenancy.migrate import quote_ident, upgrade_tenant
from tests.conftest import unique_slug


def test_t0004_seals_plaintext_webhook_secrets_in_a_format_the_service_opens(app, monkeypatch):
    spec = f"k2026:{generate_key()},old:{generate_key()}"
    monkeypatch.setenv("ZIXLY_DATA_KEYS", spec)
    schema, conn_id = f"t_{unique_slug('hist')}", uuid.uuid4()
    engine = get_router().catalog_engine
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA {quote_ident(schema)}")
            assert upgrade_tenant(conn, schema, target="t0003") == "t0003"
            conn.execute(text(f"INSERT INTO {quote_ident(schema)}.connections (id, provider, webhook_secrets) "
                              "VALUES (:id, 'xero', CAST(:secrets AS jsonb))"),
                         {"id": conn_id, "secrets": '["first-secret", "second-secret"]'})
            upgrade_tenant(conn, schema, target="t0004")
            sealed = conn.execute(text(f"SELECT webhook_secrets_sealed FROM {quote_ident(schema)}.connections")
                                  ).scalar()
        assert sealed.startswith("v1:k2026:") and "first-secret" not in sealed
        opened = Keyring.parse(spec).open_json(sealed, f"connection:{conn_id}:webhook_secrets")
        assert [item["secret"] for item in opened] == ["first-secret", "second-secret"]
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {quote_ident(schema)} CASCADE")


def test_t0008_makes_echo_opt_in_but_keeps_a_tenant_s_own_choice(app):
    """0002 seeded echo enabled for every event; t0008 removes that row where the tenant never saved echo's
    settings (no `workflow.updated` audit entry for it), and leaves it where the tenant did."""
    engine = get_router().catalog_engine
    schemas = {choice: f"t_{unique_slug('echo')}" for choice in ("untouched", "chosen")}
    try:
        with engine.begin() as conn:
            for choice, schema in schemas.items():
                conn.exec_driver_sql(f"CREATE SCHEMA {quote_ident(schema)}")
                assert upgrade_tenant(conn, schema, target="t0007") == "t0007"
                seeded = conn.execute(text(f"SELECT enabled, event_types FROM {quote_ident(schema)}"
                                           ".workflow_settings WHERE name = 'echo'")).one()
                assert seeded == (True, ["*"])
                if choice == "chosen":
                    conn.execute(text(f"INSERT INTO {quote_ident(schema)}.audit_log (actor_type, actor_id, action, "
                                      "target_type, target_id) VALUES ('api_key', 'k1', 'workflow.updated', "
                                      "'workflow', 'echo')"))
                assert upgrade_tenant(conn, schema, target="t0008") == "t0008"
        with engine.begin() as conn:
            left = {choice: conn.execute(text(f"SELECT count(*) FROM {quote_ident(schema)}.workflow_settings "
                                              "WHERE name = 'echo'")).scalar() for choice, schema in schemas.items()}
        assert left == {"untouched": 0, "chosen": 1}
    finally:
        with engine.begin() as conn:
            for schema in schemas.values():
                conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {quote_ident(schema)} CASCADE")
