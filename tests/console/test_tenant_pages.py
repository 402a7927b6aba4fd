"""The tenant console over the test client: roles checked on the server, CSRF and Origin, one tenant never
reaching another's objects, the consent flows landing back on the console, and bad input changing nothing."""
from __future__ import annotations

import pytest

from core.inbound import inbox
from core.jobs import service as jobs
from core.platform.actors import Actor
from core.tenants import apikeys
from core.workflows import settings as workflow_settings
from core.connections import store
from tenancy.context import tenant_context
from tests.console.conftest import dev_sign_in, post
from tests.console.flows import connect, follow_to_provider_and_back

pytestmark = pytest.mark.usefixtures("free_accounts")
PYTEST = Actor("staff", "pytest")


@pytest.fixture()
def admin(site, browser_client, make_tenant):
    t = make_tenant("adm")
    return t, dev_sign_in(browser_client(), tenant=t.slug, role="ADMIN")


def test_connecting_hubspot_goes_through_consent_and_lands_on_the_connection_page(site, admin):
    t, browser = admin
    conn_id = connect(site, browser, "hubspot", "Sales HubSpot")
    page = browser.get(f"/console/connections/{conn_id}")
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and "Sales HubSpot" in text and "Connected." in text
    with tenant_context(t.ref):
        assert store.get_connection(conn_id).status == "active"


def test_xero_offers_several_organisations_and_the_admin_picks_one(site, admin):
    t, browser = admin
    conn_id = connect(site, browser, "xero")
    with tenant_context(t.ref):
        conn = store.get_connection(conn_id)
    assert conn.status == "select_account" and len(conn.accounts) > 1
    page = browser.get(f"/console/connections/{conn_id}").get_data(as_text=True)
    assert "Choose the account" in page and all(a["account_id"] in page for a in conn.accounts)
    wrong = post(site, browser, f"/console/connections/{conn_id}/account", {"account_id": "not-offered"})
    assert wrong.status_code == 422 and "Choose one of the accounts listed." in wrong.get_data(as_text=True)
    chosen = conn.accounts[1]["account_id"]
    r = post(site, browser, f"/console/connections/{conn_id}/account", {"account_id": chosen})
    assert r.status_code == 303
    with tenant_context(t.ref):
        conn = store.get_connection(conn_id)
    assert conn.status == "active" and conn.account_id == chosen


def test_the_consent_finishes_only_in_the_browser_that_started_it(site, admin, browser_client):
    t, browser = admin
    r = post(site, browser, "/console/connections", {"provider": "hubspot", "name": "x"})
    callback = follow_to_provider_and_back(r.headers["Location"])
    other = browser_client()  # someone the consent URL was sent to
    refused = other.get(callback)  # that browser lands on the console with the reason; nothing bound
    assert refused.status_code == 302 and "consent_error=other_browser" in refused.headers["Location"]
    with tenant_context(t.ref):
        [conn] = store.list_connections(limit=10)
    assert conn.status == "pending" and conn.tokens_sealed is None
    # the admin asks for a fresh consent from the connection page, in their own browser: bound
    again = post(site, browser, f"/console/connections/{conn.id}/reconnect")
    landed = browser.get(follow_to_provider_and_back(again.headers["Location"]))
    assert landed.status_code == 302
    with tenant_context(t.ref):
        assert store.get_connection(conn.id).status == "active"


def test_rotating_a_webhook_secret_shows_it_once(site, admin):
    t, browser = admin
    conn_id = connect(site, browser, "hubspot")
    r = post(site, browser, f"/console/connections/{conn_id}/secrets", {"secret": ""})
    assert r.status_code == 201
    with tenant_context(t.ref):
        from core.connections import sealing

        [item] = sealing.webhook_secrets(store.get_connection(conn_id))
    assert item["secret"] in r.get_data(as_text=True)
    assert item["secret"] not in browser.get(f"/console/connections/{conn_id}").get_data(as_text=True)
    short = post(site, browser, f"/console/connections/{conn_id}/secrets", {"secret": "short"})
    assert short.status_code == 422 and "Length must be between 8 and 512." in short.get_data(as_text=True)
    r = post(site, browser, f"/console/connections/{conn_id}/secrets/{item['id']}/retire")
    assert r.status_code == 303
    with tenant_context(t.ref):
        assert sealing.webhook_secrets(store.get_connection(conn_id)) == []


def test_test_and_delete_a_connection(site, admin):
    t, browser = admin
    conn_id = connect(site, browser, "hubspot")
    r = post(site, browser, f"/console/connections/{conn_id}/test")
    assert r.status_code == 303
    assert "Test passed" in browser.get(r.headers["Location"]).get_data(as_text=True)
    assert post(site, browser, f"/console/connections/{conn_id}/delete").status_code == 303
    assert browser.get(f"/console/connections/{conn_id}").status_code == 404


def test_a_viewer_sees_everything_but_changes_nothing(site, browser_client, make_tenant):
    t = make_tenant("viewer")
    admin = dev_sign_in(browser_client(), tenant=t.slug, role="ADMIN")
    conn_id = connect(site, admin, "hubspot")
    viewer = dev_sign_in(browser_client(), tenant=t.slug, role="VIEWER")
    for page in ("/console/overview", "/console/connections", f"/console/connections/{conn_id}",
                 "/console/workflows", "/console/workflows/echo", "/console/jobs"):
        r = viewer.get(page)
        assert r.status_code == 200, page
        assert "Delete connection" not in r.get_data(as_text=True)
    for path, data in ((f"/console/connections/{conn_id}/delete", {}), ("/console/connections", {"provider": "asana"}),
                       ("/console/workflows/xero-invoice-paid-to-hubspot", {"max_attempts": "9"}),
                       (f"/console/connections/{conn_id}/test", {})):
        r = post(site, viewer, path, data)
        assert r.status_code == 403 and "needs the ADMIN role" in r.get_data(as_text=True), path
    with tenant_context(t.ref):
        assert [c.id for c in store.list_connections(limit=10)] == [store.get_connection(conn_id).id]
        assert workflow_settings.get_workflow("xero-invoice-paid-to-hubspot")["max_attempts"] == 4
    assert viewer.get("/console/api-keys").status_code == 403


def test_an_editor_retries_jobs_but_cannot_manage_keys(site, browser_client, make_tenant):
    t = make_tenant("editor")
    editor = dev_sign_in(browser_client(), tenant=t.slug, role="EDITOR")
    with tenant_context(t.ref):
        job = jobs.create_job(workflow="echo", data={"hello": "console"}, actor=PYTEST)
        jobs.cancel_job(job.id)
    r = post(site, editor, f"/console/jobs/{job.id}/retry")
    assert r.status_code == 303
    with tenant_context(t.ref):
        assert jobs.get_job(job.id)[0].status == jobs.QUEUED
    assert editor.get("/console/api-keys").status_code == 403
    r = post(site, editor, "/console/api-keys", {"name": "sneaky", "role": "ADMIN"})
    assert r.status_code == 403
    with tenant_context(t.ref):
        assert all(k.name != "sneaky" for k in apikeys.list_api_keys(limit=10))


def test_api_keys_secret_shown_once_and_revoked(site, admin):
    t, browser = admin
    r = post(site, browser, "/console/api-keys", {"name": "billing sync", "role": "EDITOR", "environment": "live"})
    assert r.status_code == 201
    with tenant_context(t.ref):
        key = next(k for k in apikeys.list_api_keys(limit=10) if k.name == "billing sync")
    text = r.get_data(as_text=True)
    assert "shown only once" in text and f"zx_live_{key.prefix}" in text
    assert "shown only once" not in browser.get("/console/api-keys").get_data(as_text=True)
    assert post(site, browser, f"/console/api-keys/{key.id}/revoke").status_code == 303
    with tenant_context(t.ref):
        assert all(k.id != key.id for k in apikeys.list_api_keys(limit=10))


@pytest.mark.parametrize("data, field, message", [
    ({"name": "", "role": "EDITOR"}, "name", "Length must be between 1 and 100."),
    ({"name": "x", "role": "OWNER"}, "role", "Must be one of: ADMIN, EDITOR, VIEWER."),
    ({"name": "x" * 101, "role": "VIEWER"}, "name", "Length must be between 1 and 100."),
])
def test_bad_key_input_shows_the_fields_error_and_creates_nothing(site, admin, data, field, message):
    t, browser = admin
    with tenant_context(t.ref):
        before = len(apikeys.list_api_keys(limit=100))
    r = post(site, browser, "/console/api-keys", data)
    text = r.get_data(as_text=True)
    assert r.status_code == 422 and message in text and f'id="{field}-error"' in text
    with tenant_context(t.ref):
        assert len(apikeys.list_api_keys(limit=100)) == before


def test_enabling_a_workflow_binds_connections_by_role_from_the_api_schemas(site, admin):
    t, browser = admin
    hubspot = connect(site, browser, "hubspot")
    xero = connect(site, browser, "xero")
    with tenant_context(t.ref):
        account = store.get_connection(xero).accounts[0]["account_id"]
    post(site, browser, f"/console/connections/{xero}/account", {"account_id": account})
    page = browser.get("/console/workflows/xero-invoice-paid-to-hubspot").get_data(as_text=True)
    assert 'name="mapping_deal_stage"' in page and 'max="20"' in page  # from Mappings and WorkflowPutSchema
    bad = post(site, browser, "/console/workflows/xero-invoice-paid-to-hubspot", {
        "enabled": "1", "connection_source": xero, "connection_target": hubspot, "max_attempts": "99",
        "mapping_deal_stage": "closedwon"})
    assert bad.status_code == 422 and "Must be greater than or equal to 1 and less than or equal to 20." in \
        bad.get_data(as_text=True)
    swapped = post(site, browser, "/console/workflows/xero-invoice-paid-to-hubspot", {
        "enabled": "1", "connection_source": hubspot, "connection_target": xero, "max_attempts": "4"})
    assert swapped.status_code == 422 and "must be a xero connection" in swapped.get_data(as_text=True)
    with tenant_context(t.ref):
        assert workflow_settings.get_workflow("xero-invoice-paid-to-hubspot")["enabled"] is False
    r = post(site, browser, "/console/workflows/xero-invoice-paid-to-hubspot", {
        "enabled": "1", "connection_source": xero, "connection_target": hubspot, "max_attempts": "5",
        "mapping_deal_stage": "contractsent"})
    assert r.status_code == 303, r.get_data(as_text=True)
    with tenant_context(t.ref):
        saved = workflow_settings.get_workflow("xero-invoice-paid-to-hubspot")
    assert saved["enabled"] and saved["connections"] == {"source": xero, "target": hubspot}
    assert saved["mappings"]["deal_stage"] == "contractsent" and saved["max_attempts"] == 5


def test_no_token_or_another_origin_is_refused_and_changes_nothing(site, admin):
    t, browser = admin
    for kwargs in ({"token": False}, {"origin": "https://evil.example"}, {"origin": None}):
        r = post(site, browser, "/console/api-keys", {"name": "csrf", "role": "ADMIN"}, **kwargs)
        assert r.status_code == 403 and "text/html" in r.content_type, kwargs
    r = post(site, browser, "/console/api-keys", {"name": "csrf", "role": "ADMIN", "csrf_token": "forged"})
    assert r.status_code == 403
    with tenant_context(t.ref):
        assert all(k.name != "csrf" for k in apikeys.list_api_keys(limit=100))
    assert post(site, browser, "/console/logout", token=False).status_code == 403
    assert browser.get("/console/overview").status_code == 200  # still signed in


def test_tenant_a_cannot_reach_tenant_bs_objects_by_url_or_form(site, browser_client, make_tenant):
    a, b = make_tenant("iso-a"), make_tenant("iso-b")
    admin_a = dev_sign_in(browser_client(), tenant=a.slug)
    admin_b = dev_sign_in(browser_client(), tenant=b.slug)
    conn_b = connect(site, admin_b, "hubspot")
    with tenant_context(b.ref):
        job_b = jobs.create_job(workflow="echo", data={}, actor=PYTEST)
        jobs.cancel_job(job_b.id)
        key_b = apikeys.list_api_keys(limit=1)[0]
    for path in (f"/console/connections/{conn_b}", f"/console/jobs/{job_b.id}", f"/console/jobs/{job_b.id}/stream",
                 f"/console/jobs/{job_b.id}/records/1"):
        r = admin_a.get(path)
        assert r.status_code == 404 and "text/html" in r.content_type, path
    for path in (f"/console/connections/{conn_b}/delete", f"/console/connections/{conn_b}/test",
                 f"/console/connections/{conn_b}/secrets", f"/console/jobs/{job_b.id}/retry",
                 f"/console/api-keys/{key_b.id}/revoke", f"/console/connections/{conn_b}/test-event",
                 f"/console/connections/{conn_b}/reconnect", f"/console/connections/{conn_b}/account",
                 f"/console/connections/{conn_b}/pause"):
        assert post(site, admin_a, path).status_code == 404, path
    r = post(site, admin_a, "/console/workflows/xero-invoice-paid-to-hubspot", {"connection_target": conn_b,
                                                                              "max_attempts": "4"})
    assert r.status_code == 422 and f"no connection {conn_b}" in r.get_data(as_text=True)
    with tenant_context(b.ref):
        assert store.get_connection(conn_b).status == "active"
        assert jobs.get_job(job_b.id)[0].status == jobs.CANCELLED
        assert apikeys.list_api_keys(limit=1)[0].revoked_at is None
    with tenant_context(a.ref):
        assert workflow_settings.get_workflow("xero-invoice-paid-to-hubspot")["connections"] == {}


def test_unknown_pages_and_errors_are_the_consoles_own_html(site, admin):
    _, browser = admin
    for path in ("/console/nope", "/console/jobs/not-a-uuid", "/console/workflows/nope"):
        r = browser.get(path)
        assert r.status_code == 404 and "text/html" in r.content_type and "Traceback" not in r.get_data(
            as_text=True), path
    assert browser.get("/v1/nope").content_type == "application/problem+json"
    r = browser.get("/console/jobs?status=BOGUS")
    assert r.status_code == 422 and "Must be one of" in r.get_data(as_text=True)


def test_the_test_event_button_is_for_development_only(site, admin, monkeypatch):
    import dataclasses

    from core.platform import runtime

    t, browser = admin
    conn_id = connect(site, browser, "hubspot")
    assert "Send a test event" in browser.get(f"/console/connections/{conn_id}").get_data(as_text=True)
    monkeypatch.setattr(runtime, "_settings", dataclasses.replace(runtime.settings(), console_dev_login=False))
    assert "Send a test event" not in browser.get(f"/console/connections/{conn_id}").get_data(as_text=True)
    r = post(site, browser, f"/console/connections/{conn_id}/test-event", {"event": "deal.won"})
    assert r.status_code == 303 and "no such test event" in browser.get(r.headers["Location"]).get_data(as_text=True)
    with tenant_context(t.ref):
        assert inbox.list_events(limit=5) == []  # nothing was sent


def test_echo_is_enabled_for_chosen_event_types(site, admin):
    t, browser = admin
    page = browser.get("/console/workflows/echo").get_data(as_text=True)
    assert 'name="event_types"' in page
    too_many = ", ".join(f"type{i}" for i in range(51))
    bad = post(site, browser, "/console/workflows/echo", {"enabled": "1", "max_attempts": "4",
                                                          "event_types": too_many})
    assert bad.status_code == 422 and 'id="event_types-error"' in bad.get_data(as_text=True)
    with tenant_context(t.ref):
        assert workflow_settings.get_workflow("echo")["event_types"] == []
    r = post(site, browser, "/console/workflows/echo", {"enabled": "1", "max_attempts": "4",
                                                        "event_types": "*, invoice.paid"})
    assert r.status_code == 303, r.get_data(as_text=True)
    with tenant_context(t.ref):
        saved = workflow_settings.get_workflow("echo")
    assert saved["enabled"] and saved["event_types"] == ["*", "invoice.paid"]


def test_the_overview_counts_this_tenants_jobs_only(site, browser_client, make_tenant):
    from core.jobs import stats

    a, b = make_tenant("ov-a"), make_tenant("ov-b")
    with tenant_context(b.ref):
        for _ in range(3):
            jobs.create_job(workflow="echo", data={}, actor=PYTEST)
    with tenant_context(a.ref):
        jobs.create_job(workflow="echo", data={}, actor=PYTEST)
        assert sum(h["total"] for h in stats.jobs_per_hour(hours=24)) == 1
    page = dev_sign_in(browser_client(), tenant=a.slug, role="VIEWER").get("/console/overview")
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and "No jobs in the last" not in text
    assert "<td>1</td><td>0</td>" in text and "<td>3</td>" not in text


def test_a_webhook_only_sender_is_active_at_once_with_its_secret_shown_once(site, admin):
    t, browser = admin
    r = post(site, browser, "/console/connections", {"provider": "custom", "name": "Our shop"})
    assert r.status_code == 201
    with tenant_context(t.ref):
        from core.connections import sealing

        [conn] = store.list_connections(limit=5)
        [item] = sealing.webhook_secrets(conn)
    assert conn.status == "active" and item["secret"] in r.get_data(as_text=True)
    assert item["secret"] not in browser.get(f"/console/connections/{conn.id}").get_data(as_text=True)


@pytest.mark.parametrize("data, field", [({"provider": "myspace"}, "provider"), ({"provider": ""}, "provider"),
                                         ({"provider": "asana", "name": "x" * 201}, "name")])
def test_bad_connection_input_shows_the_field_error_and_starts_nothing(site, admin, data, field):
    t, browser = admin
    r = post(site, browser, "/console/connections", data)
    assert r.status_code == 422 and f'id="{field}-error"' in r.get_data(as_text=True)
    with tenant_context(t.ref):
        assert store.list_connections(limit=5) == []


def test_pause_and_resume_a_connection(site, admin):
    t, browser = admin
    conn_id = connect(site, browser, "hubspot")
    r = post(site, browser, f"/console/connections/{conn_id}/pause")
    assert r.status_code == 303
    page = browser.get(r.headers["Location"]).get_data(as_text=True)
    assert "Paused:" in page and ">Resume<" in page and ">Test connection<" not in page
    with tenant_context(t.ref):
        assert store.get_connection(conn_id).status == "paused"
    assert post(site, browser, f"/console/connections/{conn_id}/pause").status_code == 409  # not active: refused
    assert post(site, browser, f"/console/connections/{conn_id}/resume").status_code == 303
    with tenant_context(t.ref):
        assert store.get_connection(conn_id).status == "active"
