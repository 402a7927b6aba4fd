"""Staff pages over the test client: only staff reach them; onboarding shows the first key once; lifecycle
actions; bad input changes nothing."""
from __future__ import annotations

import pytest

from core.tenants import service as tenants
from tenancy import provisioning
from tests.conftest import unique_slug
from tests.console.conftest import dev_sign_in, post


@pytest.fixture()
def staff(browser_client):
    return dev_sign_in(browser_client(), staff=True)


def test_staff_pages_refuse_tenant_users(site, browser_client, make_tenant):
    t = make_tenant("nostaff")
    admin = dev_sign_in(browser_client(), tenant=t.slug, role="ADMIN")
    for path in ("/console/staff/tenants", "/console/staff/fleet"):
        r = admin.get(path)
        assert r.status_code == 403 and "for Zixly staff" in r.get_data(as_text=True)
    r = post(site, admin, f"/console/staff/tenants/{t.slug}/suspend")
    assert r.status_code == 403 and tenants.get_tenant(t.slug).status == "active"
    anonymous = browser_client()
    assert anonymous.get("/console/staff/tenants").status_code == 302


def test_staff_are_sent_to_their_pages_not_a_tenants(site, staff):
    assert staff.get("/console/overview").headers["Location"].endswith("/console/staff/tenants")


def test_onboarding_shows_the_first_admin_key_once(site, staff):
    slug = unique_slug("onb")
    r = post(site, staff, "/console/staff/tenants", {"slug": slug, "name": "Onboarded Ltd", "plan": "pro"})
    text = r.get_data(as_text=True)
    assert r.status_code == 201 and "shown only once" in text and "zx_live_" in text
    assert tenants.get_tenant(slug).plan == "pro"
    assert "shown only once" not in staff.get("/console/staff/tenants").get_data(as_text=True)


@pytest.mark.parametrize("data, field, message", [
    ({"slug": "Bad Slug", "name": "x"}, "slug", "slug must be 3–40 characters"),
    ({"slug": "ok-slug-1", "name": ""}, "name", "Length must be between 1 and 200."),
    ({"slug": "ok-slug-2", "name": "x", "admin_email": "not-an-email"}, "admin_email", "Not a valid email address."),
    ({"slug": "ok-slug-3", "name": "x", "plan": "platinum"}, "plan", "platinum"),
    ({"slug": "ok-slug-4", "name": "x", "shard": "nowhere"}, "shard", "nowhere"),
])
def test_bad_onboarding_input_shows_the_error_and_creates_nothing(site, staff, data, field, message):
    r = post(site, staff, "/console/staff/tenants", data)
    text = r.get_data(as_text=True)
    assert r.status_code == 422 and message in text and f'id="{field}-error"' in text, text[-2000:]
    with pytest.raises(provisioning.TenantNotFound):
        tenants.get_tenant(data["slug"])


def test_suspend_resume_archive_restore(site, staff, make_tenant):
    t = make_tenant("life")
    for action, status in (("suspend", "suspended"), ("resume", "active"), ("archive", "archived"),
                           ("restore", "active")):
        r = post(site, staff, f"/console/staff/tenants/{t.slug}/{action}")
        assert r.status_code == 303, action
        assert tenants.get_tenant(t.slug).status == status
    r = post(site, staff, f"/console/staff/tenants/{t.slug}/restore")  # not archived: refused, unchanged
    assert r.status_code == 303 and tenants.get_tenant(t.slug).status == "active"
    assert 'class="flash flash-error"' in staff.get(r.headers["Location"]).get_data(as_text=True)


def test_the_fleet_page_shows_revisions_pool_and_shards(site, staff):
    text = staff.get("/console/staff/fleet").get_data(as_text=True)
    assert "Schema revisions" in text and "Shards" in text and "default" in text
