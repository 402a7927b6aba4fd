"""A consent the console started that fails (declined at the provider, a code the provider refuses, a spent or
unknown state, the callback in another browser) lands back on the console with one fixed sentence, and changes
nothing: the callback's redirect goes only to the page stored with the state, carries only a short reason, and
another tenant's state or page shows nothing of the first tenant's connection."""
from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import expect

from console import consent_errors
from core.connections import store
from core.connections.consent_failures import REASONS
from tenancy.context import tenant_context
from tests.console.conftest import browser_sign_in, dev_sign_in, post, shot
from tests.console.flows import connect, follow_to_provider_and_back

pytestmark = pytest.mark.usefixtures("free_accounts")
RETURN = "/console/connections/return"
SECRETISH = "sk_live_provider_says_<script>alert(1)</script>"


@pytest.fixture()
def admin(site, browser_client, make_tenant):
    t = make_tenant("cfail")
    return t, dev_sign_in(browser_client(), tenant=t.slug, role="ADMIN")


def start(site, browser, provider="xero"):
    r = post(site, browser, "/console/connections", {"provider": provider, "name": "Books"})
    assert r.status_code == 303, r.get_data(as_text=True)
    return r.headers["Location"]


def the_only_connection(t):
    with tenant_context(t.ref):
        [conn] = store.list_connections(limit=10)
    return conn


def redirected_back(r) -> dict:
    """The callback's answer: a redirect to the console's return page; its query."""
    assert r.status_code == 302, r.get_data(as_text=True)
    target = urlsplit(r.headers["Location"])
    assert not target.netloc and target.path == RETURN, r.headers["Location"]
    return {k: v[0] for k, v in parse_qs(target.query).items()}


def landed_message(browser, r) -> tuple[str, str]:
    """Follow the callback's redirect into the console: the page it ends on and that page's text."""
    page = browser.get(r.headers["Location"])
    assert page.status_code == 303
    final = browser.get(page.headers["Location"])
    assert final.status_code == 200
    return page.headers["Location"], final.get_data(as_text=True)


def test_a_declined_consent_lands_on_the_connection_page_with_what_to_do(site, admin):
    t, browser = admin
    site.sim.deny_consent("xero", description=SECRETISH)
    callback = follow_to_provider_and_back(start(site, browser))
    r = browser.get(callback)
    query = redirected_back(r)
    conn = the_only_connection(t)
    assert query == {"connection": str(conn.id), "consent_error": "access_denied"}  # nothing of the provider's
    assert conn.status == "pending" and conn.tokens_sealed is None and conn.account_id is None
    where, text = landed_message(browser, r)
    assert where == f"/console/connections/{conn.id}"
    assert "Consent was declined at Xero, so nothing changed." in text and 'role="alert"' in text
    assert "sk_live" not in text and "<script>alert" not in text


def test_declining_a_reconnect_leaves_the_active_connection_as_it_was(site, admin):
    t, browser = admin
    conn_id = connect(site, browser, "hubspot")
    with tenant_context(t.ref):
        before = store.get_connection(conn_id)
    site.sim.deny_consent("hubspot")
    again = post(site, browser, f"/console/connections/{conn_id}/reconnect")
    r = browser.get(follow_to_provider_and_back(again.headers["Location"]))
    assert redirected_back(r) == {"connection": conn_id, "consent_error": "access_denied"}
    with tenant_context(t.ref):
        after = store.get_connection(conn_id)
    assert before.status == "active" and before.tokens_sealed is not None
    assert (after.status, after.account_id, after.tokens_sealed, after.authorized_at) == (
        before.status, before.account_id, before.tokens_sealed, before.authorized_at)
    _, text = landed_message(browser, r)
    assert "Consent was declined at HubSpot" in text


def test_a_code_the_provider_refuses_lands_back_with_its_own_message(site, admin):
    t, browser = admin
    site.sim.refuse_code_exchange("asana")
    r = browser.get(follow_to_provider_and_back(start(site, browser, "asana")))
    query = redirected_back(r)
    assert query["consent_error"] == "exchange_refused"
    conn = the_only_connection(t)
    assert conn.status == "pending" and conn.tokens_sealed is None
    _, text = landed_message(browser, r)
    assert "Asana refused to finish the consent, so nothing changed." in text
    assert "invalid_grant" not in text.split('role="alert"')[1].split("</div>")[0]


def test_a_callback_in_another_browser_sends_that_browser_back_without_showing_the_connection(
        site, admin, browser_client, make_tenant):
    """Someone else (signed in to another tenant) opens the consent URL: nothing is bound, their browser lands
    on their own connections list with the message, and tenant A's connection is not shown to them."""
    t, browser = admin
    callback = follow_to_provider_and_back(start(site, browser, "hubspot"))
    other_tenant = make_tenant("cfail-b")
    other = dev_sign_in(browser_client(), tenant=other_tenant.slug, role="ADMIN")
    r = other.get(callback)
    conn = the_only_connection(t)
    assert redirected_back(r) == {"connection": str(conn.id), "consent_error": "other_browser"}
    assert conn.status == "pending" and conn.tokens_sealed is None
    where, text = landed_message(other, r)
    assert where == "/console/connections"  # B's own list: A's connection id resolves to nothing there
    assert "came back to a different browser" in text and "Books" not in text
    with tenant_context(other_tenant.ref):
        assert store.list_connections(limit=10) == []


def test_a_spent_state_sends_the_browser_to_the_console_not_to_json(site, admin):
    """Back button / reload: the state was spent by the first callback; the state's prefix says it belongs to
    a flow that returns to this site, so the browser lands on the console's fixed page (no connection named)."""
    t, browser = admin
    callback = follow_to_provider_and_back(start(site, browser, "hubspot"))
    assert browser.get(callback).status_code == 302
    r = browser.get(callback)
    assert redirected_back(r) == {"consent_error": "state_invalid"}
    where, text = landed_message(browser, r)
    assert where == "/console/connections" and "had expired or was already used" in text
    assert the_only_connection(t).status == "active"  # the first callback's outcome stands


def test_the_callbacks_query_never_chooses_where_the_browser_goes(site, admin):
    """An unknown state of an API-style flow, with a return target in the query: problem+json, no redirect."""
    _, browser = admin
    for query in ("state=forged&return_to=https://evil.example/&code=x",
                  "state=forged&error=access_denied&return_to=//evil.example"):
        r = browser.get("/v1/oauth/callback?" + query)
        assert r.status_code == 400 and r.content_type == "application/problem+json"
        assert "Location" not in r.headers
    r = browser.get("/v1/oauth/callback?state=p.forged&return_to=https://evil.example/")
    assert redirected_back(r) == {"consent_error": "state_invalid"}  # only ever this site's fixed page


def test_a_hand_made_return_link_shows_only_fixed_text(site, admin):
    _, browser = admin
    r = browser.get(f"{RETURN}?consent_error=%3Cscript%3Ealert(1)%3C/script%3E&connection=nope")
    assert r.status_code == 303 and r.headers["Location"] == "/console/connections"
    text = browser.get(r.headers["Location"]).get_data(as_text=True)
    assert consent_errors.FALLBACK in text and "<script>alert" not in text


def test_every_reason_the_callback_sends_has_its_own_sentence():
    assert set(REASONS) == set(consent_errors.MESSAGES)


def test_in_the_browser_a_declined_xero_consent_lands_back_and_a_retry_connects(site, new_page, make_tenant):
    t = make_tenant("cfail-web")
    page = new_page()
    browser_sign_in(site, page, subject="ada", tenant=t.slug, role="ADMIN", email="ada@example.com")
    site.sim.deny_consent("xero")
    page.goto(f"{site.url}/console/connections")
    page.get_by_label("Provider").select_option("xero")
    page.get_by_label("Name", exact=True).fill("Books")
    page.get_by_role("button", name="Connect").click()  # Xero's consent page, declined, and back
    expect(page.get_by_role("alert")).to_contain_text("Consent was declined at Xero, so nothing changed.")
    expect(page.get_by_role("heading", name="Books")).to_contain_text("pending")
    assert page.url.startswith(f"{site.url}/console/connections/") and "consent_error" not in page.url
    shot(page, "30-consent-declined")
    page.get_by_role("button", name="Give consent").click()  # the simulator consents this time
    expect(page.get_by_role("heading", name="Choose the account")).to_be_visible()
