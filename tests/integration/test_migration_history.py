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
