"""The console in a real browser (headless Chromium): sign in through the identity provider, connect
providers through their consent pages, the pages at laptop and phone width, live job status, staff
onboarding and suspension, logout. A screenshot of every page is kept (build/screenshots)."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from core.jobs import service as jobs
from core.platform.actors import Actor
from tenancy.context import tenant_context
from tests.console.conftest import browser_sign_in, shot

pytestmark = pytest.mark.usefixtures("free_accounts")
PYTEST = Actor("staff", "pytest")


def test_an_admin_signs_in_connects_hubspot_and_xero_and_uses_every_page(site, new_page, make_tenant):
    t = make_tenant("browser")
    page = new_page()
    page.goto(f"{site.url}/")
    expect(page.get_by_role("heading", name="Sign in to Zixly")).to_be_visible()
    shot(page, "01-login")
    browser_sign_in(site, page, subject="ada", tenant=t.slug, role="ADMIN", email="ada@example.com")
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    cookie = next(c for c in page.context.cookies() if c["name"] == "zixly_console")
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Lax" and cookie["path"] == "/console"
    shot(page, "02-overview")
    page.keyboard.press("Tab")  # the first stop is the skip link
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Connections").click()
    page.get_by_label("Provider").select_option("hubspot")
    page.get_by_label("Name", exact=True).fill("Sales HubSpot")
    shot(page, "03-connections")
    page.get_by_role("button", name="Connect").click()  # to the provider's consent, and back
    expect(page.get_by_role("status").filter(has_text="Connected.")).to_be_visible()
    expect(page.get_by_role("heading", name="Sales HubSpot")).to_contain_text("active")
    shot(page, "04-connection-hubspot")

    page.goto(f"{site.url}/console/connections")
    page.get_by_label("Provider").select_option("xero")
    page.get_by_role("button", name="Connect").click()
    expect(page.get_by_role("heading", name="Choose the account")).to_be_visible()
    shot(page, "05-connection-xero-choose-account")
    page.get_by_role("button", name="Use this account").click()
    expect(page.get_by_role("status").filter(has_text="the connection is active")).to_be_visible()

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Workflows").click()
    shot(page, "06-workflows")
    page.get_by_role("link", name="xero-invoice-paid-to-hubspot").click()
    page.get_by_label("Max attempts").fill("0")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#max_attempts-error")).to_contain_text("greater than or equal to 1")
    shot(page, "07-workflow-field-error")
    page.get_by_label("Max attempts").fill("4")
    page.get_by_label("Enabled").check()
    page.get_by_label("Source (xero)").select_option(index=1)
    page.get_by_label("Target (hubspot)").select_option(index=1)
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status").filter(has_text="(enabled)")).to_be_visible()
    shot(page, "08-workflow-enabled")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="API keys").click()
    page.get_by_role("button", name="Create key").click()
    expect(page.locator("#name-error")).to_be_visible()  # nothing created
    page.get_by_label("Name").fill("billing sync")
    page.get_by_label("Role").select_option("EDITOR")
    page.get_by_role("button", name="Create key").click()
    expect(page.locator("#new-key-secret")).to_contain_text("zx_live_")
    shot(page, "09-api-key-created")

    phone = new_page(width=390, height=844)
    phone.context.add_cookies([cookie])
    phone.goto(f"{site.url}/console/connections")
    expect(phone.get_by_role("cell", name="Sales HubSpot")).to_be_visible()
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390 + 1  # no sideways scrolling
    shot(phone, "10-connections-phone")

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_text("You are signed out.")).to_be_visible()
    page.goto(f"{site.url}/console/overview")
    expect(page.get_by_role("heading", name="Sign in to Zixly")).to_be_visible()


def test_a_job_page_updates_live_without_a_reload(site, new_page, make_tenant):
    t = make_tenant("blive")
    with tenant_context(t.ref):
        job = jobs.create_job(workflow="echo", data={"hello": "browser"}, actor=PYTEST)
    page = new_page()
    browser_sign_in(site, page, subject="viv", tenant=t.slug, role="VIEWER")
    page.goto(f"{site.url}/console/jobs/{job.id}")
    status = page.locator("[data-job-status]")
    expect(status).to_have_text("QUEUED")
    page.evaluate("window.__sameDocument = true")
    with tenant_context(t.ref):
        jobs.cancel_job(job.id)
    expect(status).to_have_text("CANCELLED")
    assert page.evaluate("window.__sameDocument") is True  # pushed over SSE, not a reload
    expect(page.get_by_role("button", name="Retry")).to_have_count(0)  # a VIEWER gets no actions
    shot(page, "11-job-live")
    page.goto(f"{site.url}/console/jobs")
    expect(page.get_by_role("link", name=str(job.id)[:8])).to_be_visible()
    shot(page, "12-jobs")


def test_staff_onboard_a_tenant_and_suspending_it_signs_its_users_out(site, new_page, make_tenant):
    t = make_tenant("bsusp")
    user = new_page()
    browser_sign_in(site, user, subject="uma", tenant=t.slug, role="ADMIN")
    staff = new_page()
    browser_sign_in(site, staff, subject="sid", staff=True)
    expect(staff.get_by_role("heading", name="Tenants")).to_be_visible()
    staff.get_by_label("Slug").fill(f"{t.slug}-new")
    staff.get_by_label("Name").fill("Brand New Ltd")
    staff.get_by_label("Plan").fill("pro")
    staff.get_by_role("button", name="Create tenant").click()
    expect(staff.locator("#new-tenant-key")).to_contain_text("zx_live_")
    shot(staff, "13-staff-tenants")
    staff.locator(f"#tenant-{t.slug}").get_by_role("button", name="Suspend").click()
    expect(staff.locator(f"#tenant-{t.slug}")).to_contain_text("suspended")
    user.reload()
    expect(user.get_by_text("Your organisation's access is suspended")).to_be_visible()
    staff.get_by_role("link", name="Fleet").click()
    expect(staff.get_by_role("heading", name="Schema revisions")).to_be_visible()
    shot(staff, "14-staff-fleet")


def test_events_deliveries_notifications_audit_and_error_pages(site, new_page, make_tenant):
    import uuid

    from connectors.base import WebhookEvent
    from tests.inbound.events import record_events

    t = make_tenant("bmore")
    with tenant_context(t.ref):
        record_events(provider="custom", connection_id=None, headers={}, raw_body=None, events=[WebhookEvent(
            event_id=uuid.uuid4().hex, event_type="order.created", account_id=None, resource_id="o-1",
            occurred_at=None, payload={"order": 1})])
    page = new_page()
    browser_sign_in(site, page, subject="eda", tenant=t.slug, role="ADMIN")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Events").click()
    page.get_by_role("row").filter(has_text="order.created").get_by_role("link").click()
    expect(page.get_by_role("heading", name="custom · order.created")).to_be_visible()
    shot(page, "15-event")
    page.get_by_role("button", name="Replay").click()
    expect(page.get_by_role("status").filter(has_text="Replayed")).to_be_visible()

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Deliveries").click()
    expect(page.get_by_role("cell", name="No deliveries.")).to_be_visible()
    shot(page, "16-deliveries")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Notifications").click()
    page.get_by_label("Extra topics (comma-separated)").first.fill("not a topic!")
    page.get_by_role("button", name="Save").click()
    expect(page.locator('[id="job-failed.topics-error"]')).to_be_visible()
    shot(page, "17-notifications-field-error")
    page.get_by_label("Extra topics (comma-separated)").first.fill("ops")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status").filter(has_text="saved")).to_be_visible()

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Audit log").click()
    expect(page.get_by_role("cell", name="notification_settings.updated")).to_be_visible()
    shot(page, "18-audit-log")

    page.goto(f"{site.url}/console/jobs/{uuid.uuid4()}")
    expect(page.get_by_role("heading", name="Not found (404)")).to_be_visible()
    assert "Traceback" not in page.content()
    shot(page, "19-not-found")
