"""docs/deploy.md's variable table is generated from the settings module's source, and kept up to date."""
from __future__ import annotations

from tests.deploy import settings_env
from tests.deploy.settings_env import DEPLOY_DOC, render_doc, render_table, settings_env_vars


def test_the_variable_table_is_up_to_date():
    doc = DEPLOY_DOC.read_text()
    assert render_doc(doc) == doc, "regenerate it: .venv/bin/python -m tests.deploy.settings_env"


def test_the_table_check_catches_a_stale_table():
    doc = DEPLOY_DOC.read_text()
    stale = "\n".join(line for line in doc.splitlines() if "`ZIXLY_TRUSTED_PROXIES`" not in line) + "\n"
    assert render_doc(stale) != stale
    assert render_doc(stale) == doc


def test_every_variable_the_settings_module_reads_is_found_and_described():
    found = {v.name: v for v in settings_env_vars()}
    assert {"DATABASE_URL", "REDIS_URL", "AWS_ENDPOINT_URL", "ZIXLY_HOME", "ZIXLY_RATE_LIMIT_FAIL_OPEN",
            "ZIXLY_XERO_APP_WEBHOOK_SECRETS", "ZIXLY_SHOPIFY_APP_WEBHOOK_SECRETS"} <= set(found)
    assert found["DATABASE_URL"].default == "required"
    assert (found["ZIXLY_DB_POOL_SIZE"].kind, found["ZIXLY_DB_POOL_SIZE"].default) == ("int", "5")
    assert found["ZIXLY_RATE_LIMIT_FAIL_OPEN"].kind == "bool"
    assert "not described yet" not in render_table()


def test_a_variable_added_to_the_settings_module_shows_up(tmp_path):
    source = settings_env.SETTINGS_MODULE.read_text().replace(
        'redis_url=env.get("REDIS_URL", ""),',
        'redis_url=env.get("REDIS_URL", ""),\n            outbound_workers=int(env.get("ZIXLY_OUTBOUND_WORKERS", 4)),')
    module = tmp_path / "config.py"
    module.write_text(source)
    added = {v.name: v for v in settings_env_vars(module)}["ZIXLY_OUTBOUND_WORKERS"]
    assert (added.field, added.kind, added.default) == ("outbound_workers", "int", "4")
    assert "`ZIXLY_OUTBOUND_WORKERS` | int | `4` | (not described yet" in render_table(settings_env_vars(module))
