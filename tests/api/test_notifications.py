"""Notification log and settings over the API: defaults, changes, bad input, roles, and tenant isolation."""
import uuid

from core.platform import signals

DEFAULT = {"enabled": True, "admins": True, "users": [], "topics": []}
ANN = {"id": "ann", "email": "ann@a.test", "name": "Ann Lee"}


def dead_letter(tenant, message_id=None):
    signals.emit(signals.delivery_dead_lettered, tenant=tenant.ref, provider="hubspot",
                 message_id=message_id or str(uuid.uuid4()), reason="HTTP 400 from HubSpot")


def viewer(client, tenant):
    key = client.post("/v1/api-keys", json={"name": "viewer", "role": "VIEWER"}, headers=tenant.headers).get_json()
    return {"X-API-Key": key["secret"]}


def test_settings_start_at_the_defaults_for_every_event(client, make_tenant):
    t = make_tenant()
    r = client.get("/v1/notification-settings", headers=t.headers)
    assert r.status_code == 200
    assert r.get_json() == {"events": {e: DEFAULT for e in (
        "job-failed", "delivery-dead-lettered", "connection-reauth-required", "api-key-created",
        "subscription-disabled")}}


def test_put_replaces_the_events_named_and_keeps_the_others(client, make_tenant):
    t = make_tenant()
    change = {"enabled": True, "admins": False, "users": [ANN], "topics": ["ops"]}
    r = client.put("/v1/notification-settings", json={"events": {"job-failed": change}}, headers=t.headers)
    assert r.status_code == 200 and r.get_json()["events"]["job-failed"] == change
    r = client.put("/v1/notification-settings", json={"events": {"api-key-created": {"enabled": False}}},
                   headers=t.headers)
    events = client.get("/v1/notification-settings", headers=t.headers).get_json()["events"]
    assert events["job-failed"] == change  # not named in the second PUT: kept
    assert events["api-key-created"] == {**DEFAULT, "enabled": False}
    assert events["delivery-dead-lettered"] == DEFAULT
    audit = client.get("/v1/audit-log?action=notification_settings.updated", headers=t.headers).get_json()
    assert [e["details"]["events"] for e in audit["items"]] == [["api-key-created"], ["job-failed"]]


BAD_BODIES = [
    {},
    {"events": {}},
    {"events": []},
    {"events": {"job-failed": {}}},  # enabled is required
    {"events": {"no-such-event": {"enabled": True}}},
    {"events": {"tenant-welcome": {"enabled": False}}},  # not configurable
    {"events": {"job-failed": {"enabled": "maybe"}}},
    {"events": {"job-failed": {"enabled": True, "colour": "red"}}},
    {"events": {"job-failed": {"enabled": True, "users": [{"id": "ann", "email": "not-an-email"}]}}},
    {"events": {"job-failed": {"enabled": True, "users": [{"id": "has space"}]}}},
    {"events": {"job-failed": {"enabled": True, "users": [{"email": "a@a.test"}]}}},
    {"events": {"job-failed": {"enabled": 1}}},
    {"events": {"job-failed": {"enabled": True, "admins": 0}}},
    {"events": {"job-failed": {"enabled": True, "users": [{"id": f"u{i}"} for i in range(51)]}}},
    {"events": {"job-failed": {"enabled": True, "topics": ["Ops Team"]}}},
    {"events": {"job-failed": {"enabled": True, "topics": "ops"}}},
    {"events": {"job-failed": {"enabled": True}}, "extra": 1},
]


def test_bad_settings_are_a_problem_and_change_nothing(client, make_tenant):
    t = make_tenant()
    client.put("/v1/notification-settings", json={"events": {"job-failed": {"enabled": True, "users": [ANN]}}},
               headers=t.headers)
    before = client.get("/v1/notification-settings", headers=t.headers).get_json()
    for body in BAD_BODIES:
        r = client.put("/v1/notification-settings", json=body, headers=t.headers)
        assert r.status_code == 422 and r.content_type == "application/problem+json", (body, r.get_json())
        assert r.get_json()["errors"], body  # the field problems are named
        assert client.get("/v1/notification-settings", headers=t.headers).get_json() == before, body


def test_a_user_named_twice_is_told_once(client, make_tenant):
    t = make_tenant()
    body = {"events": {"job-failed": {"enabled": True, "users": [ANN, dict(ANN, name="Ann B. Lee")]}}}
    r = client.put("/v1/notification-settings", json=body, headers=t.headers)
    assert r.status_code == 200
    assert r.get_json()["events"]["job-failed"]["users"] == [dict(ANN, name="Ann B. Lee")]


def test_non_json_and_non_admin_are_refused_and_change_nothing(client, make_tenant):
    t = make_tenant()
    r = client.put("/v1/notification-settings", data="events=1", headers={**t.headers, "Content-Type": "text/plain"})
    assert r.status_code == 415 and r.content_type == "application/problem+json"
    view = viewer(client, t)
    for method in ("get", "put"):
        r = getattr(client, method)("/v1/notification-settings", json={"events": {"job-failed": {"enabled": False}}},
                                    headers=view)
        assert r.status_code == 403 and r.content_type == "application/problem+json"
    assert client.get("/v1/notifications", headers=view).status_code == 403
    assert client.get("/v1/notification-settings", headers=t.headers).get_json()["events"]["job-failed"] == DEFAULT


def test_settings_are_per_tenant(client, make_tenant):
    a, b = make_tenant("a"), make_tenant("b")
    mine = {"enabled": True, "admins": False, "users": [ANN], "topics": []}
    assert client.put("/v1/notification-settings", json={"events": {"job-failed": mine}},
                      headers=a.headers).status_code == 200
    assert client.get("/v1/notification-settings", headers=b.headers).get_json()["events"]["job-failed"] == DEFAULT
    off = {"enabled": False}
    assert client.put("/v1/notification-settings", json={"events": {"job-failed": off}},
                      headers=b.headers).status_code == 200
    assert client.get("/v1/notification-settings", headers=a.headers).get_json()["events"]["job-failed"] == mine


def test_the_log_is_per_tenant_and_another_tenants_notification_is_404(client, make_tenant):
    a, b = make_tenant("a"), make_tenant("b")
    dead_letter(a, "msg-of-a")
    items_a = client.get("/v1/notifications?event=delivery-dead-lettered", headers=a.headers).get_json()["items"]
    assert len(items_a) == 1 and items_a[0]["status"] == "queued"
    assert items_a[0]["recipients"] == [{"type": "Topic", "topicKey": f"zixly_{a.slug}_admins"}]
    items_b = client.get("/v1/notifications", headers=b.headers).get_json()["items"]
    assert "msg-of-a" not in str(items_b) and all(n["id"] != items_a[0]["id"] for n in items_b)
    r = client.get(f"/v1/notifications/{items_a[0]['id']}", headers=b.headers)
    assert r.status_code == 404 and r.content_type == "application/problem+json"
    detail = client.get(f"/v1/notifications/{items_a[0]['id']}", headers=a.headers).get_json()
    assert detail["request"]["payload"]["message_id"] == "msg-of-a"
    assert detail["request"]["context"] == {"tenant": a.slug}
    assert detail["request"]["transactionId"] == detail["transaction_id"]


def test_the_log_filters_and_pages(client, make_tenant):
    t = make_tenant()
    for i in range(3):
        dead_letter(t, f"m-{i}")
    client.put("/v1/notification-settings", json={"events": {"delivery-dead-lettered": {"enabled": False}}},
               headers=t.headers)
    dead_letter(t, "m-off")
    first = client.get("/v1/notifications?event=delivery-dead-lettered&limit=2", headers=t.headers).get_json()
    second = client.get(f"/v1/notifications?event=delivery-dead-lettered&limit=2&cursor={first['next_cursor']}",
                        headers=t.headers).get_json()
    seen = [n["subject"] for n in first["items"] + second["items"]]
    assert seen == ["delivery:m-off", "delivery:m-2", "delivery:m-1", "delivery:m-0"]  # newest first
    assert second["next_cursor"] is None
    skipped = client.get("/v1/notifications?status=skipped", headers=t.headers).get_json()["items"]
    # make_tenant gives no admin email, so the welcome is skipped too
    assert {(n["event"], n["error"]) for n in skipped} == {
        ("delivery-dead-lettered", "disabled in notification settings"), ("tenant-welcome", "no recipients")}
    for bad in ("status=lost", "event=nope", "cursor=!!!", "limit=0", "created_after=yesterday"):
        r = client.get(f"/v1/notifications?{bad}", headers=t.headers)
        assert r.status_code in (400, 422) and r.content_type == "application/problem+json", bad


def test_the_same_occurrence_is_recorded_once(client, make_tenant):
    t = make_tenant()
    dead_letter(t, "same")
    dead_letter(t, "same")
    items = client.get("/v1/notifications?event=delivery-dead-lettered", headers=t.headers).get_json()["items"]
    assert len(items) == 1


def test_the_admin_named_at_sign_up_is_told_with_the_admins_topic(client, staff_headers):
    from core.notify import settings as notify_settings
    from tenancy.context import tenant_context
    from tenancy.db import tenant_session

    r = client.post("/v1/staff/tenants", json={"slug": f"adm-{uuid.uuid4().hex[:8]}", "name": "Adm Ltd",
                                               "admin_email": "Boss@Adm.test"}, headers=staff_headers)
    assert r.status_code == 201, r.get_json()
    from tenancy.db import get_router
    from tenancy.provisioning import load_tenant_ref

    ref = load_tenant_ref(get_router(), r.get_json()["slug"])
    with tenant_context(ref), tenant_session() as session:
        to, reason = notify_settings.recipients(session, event="job-failed", tenant=ref.slug,
                                                admin_email=notify_settings.admin_email(ref.slug))
    assert reason is None
    assert {"type": "Topic", "topicKey": f"zixly_{ref.slug}_admins"} in to
    assert {"subscriberId": f"zixly:{ref.slug}:boss@adm.test", "email": "Boss@Adm.test"} in to
