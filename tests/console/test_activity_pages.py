"""Events (replay), deliveries (live, replay) and the audit log pages: roles and tenant isolation."""
from __future__ import annotations

import uuid

from connectors.base import WebhookEvent
from core.inbound import inbox
from core.platform.actors import Actor
from tenancy.context import tenant_context
from tests.inbound.events import record_events
from tests.console.conftest import dev_sign_in, post

PYTEST = Actor("staff", "pytest")


def an_event(t) -> str:
    event = WebhookEvent(event_id=uuid.uuid4().hex, event_type="test.ping", account_id=None, resource_id="r1",
                         occurred_at=None, payload={"hello": "console"})
    with tenant_context(t.ref):
        [recorded] = record_events(provider="custom", connection_id=None, events=[event], headers={},
                                         raw_body=None)
        return str(inbox.list_events(limit=1)[0].id)


def test_events_show_their_payload_and_an_editor_replays_one(site, browser_client, make_tenant):
    t = make_tenant("ev")
    event_id = an_event(t)
    viewer = dev_sign_in(browser_client(), tenant=t.slug, role="VIEWER")
    assert event_id[:8] in viewer.get("/console/events").get_data(as_text=True)
    page = viewer.get(f"/console/events/{event_id}").get_data(as_text=True)
    assert "&#34;hello&#34;: &#34;console&#34;" in page or '"hello": "console"' in page
    assert post(site, viewer, f"/console/events/{event_id}/replay").status_code == 403
    editor = dev_sign_in(browser_client(), tenant=t.slug, role="EDITOR")
    assert post(site, editor, f"/console/events/{event_id}/replay").status_code == 303
    with tenant_context(t.ref):
        assert inbox.get_event(event_id).replays == 1


def test_another_tenants_event_is_not_found(site, browser_client, make_tenant):
    a, b = make_tenant("ev-a"), make_tenant("ev-b")
    event_b = an_event(b)
    admin_a = dev_sign_in(browser_client(), tenant=a.slug)
    assert admin_a.get(f"/console/events/{event_b}").status_code == 404
    assert post(site, admin_a, f"/console/events/{event_b}/replay").status_code == 404
    assert event_b[:8] not in admin_a.get("/console/events").get_data(as_text=True)
    with tenant_context(b.ref):
        assert inbox.get_event(event_b).replays == 0


def test_deliveries_page_and_audit_log_roles(site, browser_client, make_tenant):
    t = make_tenant("del")
    viewer = dev_sign_in(browser_client(), tenant=t.slug, role="VIEWER")
    page = viewer.get("/console/deliveries")
    assert page.status_code == 200 and "sse-connect" in page.get_data(as_text=True)
    assert "Replay every dead letter" not in page.get_data(as_text=True)
    assert post(site, viewer, "/console/deliveries/replay-dead").status_code == 403
    assert viewer.get("/console/audit-log").status_code == 403
    admin = dev_sign_in(browser_client(), tenant=t.slug, role="ADMIN")
    assert post(site, admin, "/console/deliveries/replay-dead").status_code == 303
    audit = admin.get("/console/audit-log").get_data(as_text=True)
    assert "tenant.created" in audit
    assert post(site, admin, f"/console/deliveries/{uuid.uuid4()}/replay").status_code == 404


def test_notification_settings_bad_topic_changes_nothing_then_saves(site, browser_client, make_tenant):
    from core.notify import settings as notify_settings

    t = make_tenant("notif")
    admin = dev_sign_in(browser_client(), tenant=t.slug, role="ADMIN")
    form = {"job-failed.enabled": "1", "job-failed.admins": "1", "job-failed.topics": "ops, -bad topic"}
    r = post(site, admin, "/console/notifications", form)
    assert r.status_code == 422 and 'id="job-failed.topics-error"' in r.get_data(as_text=True)
    with tenant_context(t.ref):
        assert notify_settings.get_settings()["job-failed"]["topics"] == []
    r = post(site, admin, "/console/notifications", {**form, "job-failed.topics": "ops"})
    assert r.status_code == 303
    with tenant_context(t.ref):
        saved = notify_settings.get_settings()
    assert saved["job-failed"]["topics"] == ["ops"] and saved["api-key-created"]["enabled"] is False
    editor = dev_sign_in(browser_client(), tenant=t.slug, role="EDITOR")
    assert editor.get("/console/notifications").status_code == 403
