"""The first run of the README, in the console alone, in a real browser: sign in, connect Xero and HubSpot
through the simulators' consent pages, pick the Xero organisation, enable xero-invoice-paid-to-hubspot, send
"invoice paid" from the connection page (the simulator pays an invoice and sends Xero's signed webhook), watch
the job complete live, and open the moved deal. A real Celery worker and the outbound consumer run the job."""
from __future__ import annotations

import pytest
from celery.contrib.testing.worker import start_worker
from playwright.sync_api import expect

import workers.jobs  # noqa: F401  (registers the tasks)
from core.inbound import listener
from core.platform.queue import celery_app
from tests.console.conftest import OUTBOUND, browser_sign_in, shot

pytestmark = pytest.mark.usefixtures("free_accounts")


@pytest.fixture(scope="module")
def running(site):
    """The worker, the inbox processor (`zixly inbox`: webhooks are fanned out behind the answer) and the outbound
    consumer, as `make run` runs them."""
    from workers.consumer import Config, Consumer

    consumer = Consumer(Config(threads=2, wait_seconds=1, retry_base=0.5, sweep_seconds=0.5, heartbeat_seconds=0.5,
                               providers=OUTBOUND)).start()
    inbox = listener.InboxListener().start()
    with start_worker(celery_app, pool="threads", concurrency=2, perform_ping_check=False, shutdown_timeout=10):
        yield
    inbox.stop()
    consumer.stop()


def connect(page, site, provider: str, name: str) -> None:
    page.goto(f"{site.url}/console/connections")
    page.get_by_label("Provider").select_option(provider)
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_role("button", name="Connect").click()  # the simulator's consent page, and back


def test_the_first_run_in_the_console(site, running, new_page, make_tenant):
    t = make_tenant("walk")
    page = new_page()
    browser_sign_in(site, page, subject="ada", tenant=t.slug, role="ADMIN", email="ada@example.com")

    connect(page, site, "hubspot", "HubSpot")
    expect(page.get_by_role("status").filter(has_text="Connected.")).to_be_visible()
    connect(page, site, "xero", "Xero")
    expect(page.get_by_role("heading", name="Choose the account")).to_be_visible()
    page.get_by_role("button", name="Use this account").click()
    expect(page.get_by_role("heading", name="Xero")).to_contain_text("active")
    xero_page = page.url

    page.goto(f"{site.url}/console/workflows/xero-invoice-paid-to-hubspot")
    page.get_by_label("Enabled").check()
    page.get_by_label("Source (xero)").select_option(index=1)
    page.get_by_label("Target (hubspot)").select_option(index=1)
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status").filter(has_text="(enabled)")).to_be_visible()

    page.goto(xero_page)
    page.get_by_label("Event").select_option("invoice.paid")
    shot(page, "20-walkthrough-send-test-event")
    page.get_by_role("button", name="Send").click()  # the simulated Xero pays an invoice and sends the webhook
    expect(page.get_by_role("status").filter(has_text="Zixly answered 200")).to_be_visible()
    row = page.locator("#job-rows tr").filter(has_text="xero-invoice-paid-to-hubspot")
    expect(row).to_have_count(1)
    row.get_by_role("link").click()
    expect(page.locator("[data-job-status]")).to_have_text("COMPLETED", timeout=60_000)  # live, if still running
    shot(page, "21-walkthrough-job-completed")

    page.get_by_role("link", name="deal").click()
    expect(page.locator('[data-property="dealstage"]')).to_have_text("closedwon")
    shot(page, "22-walkthrough-moved-deal")
