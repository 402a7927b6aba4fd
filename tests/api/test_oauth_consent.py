"""A consent binds the account only in the browser of the admin who started it (account-linking CSRF), against
the provider simulators: each "browser" is its own test client with its own cookie jar."""
from urllib.parse import parse_qs

import pytest

import uuid

from sqlalchemy import select

from core.connections import consent_binding
from tenancy.db import catalog_session
from tenancy.models import AccountIndex
from tests.api.test_connections import OPTIONS, finish, follow_consent, row

pytestmark = pytest.mark.usefixtures("free_accounts")


def start(browser, t, provider, **body):
    r = browser.post("/v1/connections", json={"provider": provider, "options": OPTIONS[provider], **body},
                     headers=t.headers)
    assert r.status_code == 201, r.get_json()
    return r


def consent_cookies(response) -> list[str]:
    return [c for c in response.headers.getlist("Set-Cookie") if c.startswith(consent_binding.COOKIE_PREFIX)]


def state_of(query: str) -> str:
    return parse_qs(query)["state"][0]


def assert_refused_and_nothing_bound(r, t, conn_id):
    assert r.status_code == 403 and r.content_type == "application/problem+json", r.get_data(as_text=True)
    assert r.get_json()["type"].endswith("/oauth-consent-elsewhere")
    stored = row(t, conn_id)
    assert stored.status == "pending" and stored.tokens_sealed is None and stored.account_id is None
    assert "other than the one that started it" in stored.last_error
    with catalog_session() as session:  # no provider account routed to the connection
        assert session.scalars(select(AccountIndex).where(
            AccountIndex.connection_id == uuid.UUID(conn_id))).all() == []


def test_a_consent_url_sent_to_someone_else_binds_nothing(app, client, make_tenant):
    """The attack: A's admin starts a connection and sends the consent URL to a victim, who consents in their
    own browser. The victim's callback binds nothing; the state is spent, so the admin cannot replay the code
    the victim's browser received either; the rightful flow still works end to end."""
    t = make_tenant("csrf")
    admin = client
    created = start(admin, t, "hubspot")
    body = created.get_json()
    assert body["consent"] == "browser"
    victim = app.test_client()  # another person's browser: no cookie of this flow
    query = follow_consent(body["authorize_url"])
    r = victim.get("/v1/oauth/callback?" + query)
    assert_refused_and_nothing_bound(r, t, body["id"])
    again = admin.get("/v1/oauth/callback?" + query)  # the code reached the victim: spent, never usable
    assert again.status_code == 400 and again.get_json()["type"].endswith("/oauth-state-invalid")
    assert row(t, body["id"]).tokens_sealed is None
    audit = admin.get("/v1/audit-log", headers=t.headers).get_json()["items"]
    assert any(e["action"] == "connection.consent_refused" and e["target_id"] == body["id"] for e in audit)
    # the admin consents in their own browser: bound
    fresh = admin.post(f"/v1/connections/{body['id']}/authorize", headers=t.headers)
    assert fresh.status_code == 200 and fresh.get_json()["consent"] == "browser" and consent_cookies(fresh)
    conn = finish(admin, t, admin.get("/v1/oauth/callback?" + follow_consent(fresh.get_json()["authorize_url"])))
    assert conn["id"] == body["id"] and conn["status"] == "active"


def test_the_cookie_is_httponly_lax_scoped_short_and_cleared_by_the_callback(client, make_tenant):
    t = make_tenant("cookie")
    created = start(client, t, "asana")
    [header] = consent_cookies(created)
    attributes = {part.strip().split("=")[0].lower(): part.strip() for part in header.split(";")[1:]}
    assert {"httponly", "secure", "path", "max-age", "samesite"} <= set(attributes)  # the base URL is https
    assert attributes["path"] == "Path=/v1/oauth" and attributes["max-age"] == "Max-Age=600"
    assert attributes["samesite"] == "SameSite=Lax" and "domain" not in attributes
    query = follow_consent(created.get_json()["authorize_url"])
    name = consent_binding.cookie_name(state_of(query))
    assert header.startswith(f"{name}=")
    assert client.get_cookie(name, path="/v1/oauth") is not None
    done = client.get("/v1/oauth/callback?" + query)
    assert done.status_code == 200, done.get_json()
    assert client.get_cookie(name, path="/v1/oauth") is None  # cleared by the answer


def test_another_flows_cookie_or_a_forged_one_does_not_complete_a_consent(app, client, make_tenant):
    a, b = make_tenant("elsew-a"), make_tenant("elsew-b")
    other_browser = app.test_client()
    start(other_browser, b, "asana")  # that browser holds a cookie, but of B's own flow
    for attempt in ("another flow's cookie", "a forged value under the right name"):
        created = start(client, a, "hubspot").get_json()
        query = follow_consent(created["authorize_url"])
        browser = other_browser
        if attempt == "a forged value under the right name":
            browser = app.test_client()
            browser.set_cookie(consent_binding.cookie_name(state_of(query)), "guessed", path="/v1/oauth")
        assert_refused_and_nothing_bound(browser.get("/v1/oauth/callback?" + query), a, created["id"])


def test_two_consents_started_in_one_browser_both_complete(client, make_tenant):
    t = make_tenant("two")
    first, second = start(client, t, "hubspot").get_json(), start(client, t, "asana").get_json()
    first_query, second_query = follow_consent(first["authorize_url"]), follow_consent(second["authorize_url"])
    assert finish(client, t, client.get("/v1/oauth/callback?" + second_query))["id"] == second["id"]
    assert finish(client, t, client.get("/v1/oauth/callback?" + first_query))["id"] == first["id"]


def test_api_mode_is_an_explicit_opt_in_and_completes_without_a_cookie(app, client, make_tenant):
    t = make_tenant("apimode")
    created = start(client, t, "hubspot", consent="api")
    assert created.get_json()["consent"] == "api" and consent_cookies(created) == []
    users_browser = app.test_client()  # the client opened the consent in its own user's browser
    conn = finish(client, t, users_browser.get("/v1/oauth/callback?" + follow_consent(
        created.get_json()["authorize_url"])))
    assert conn["status"] == "active"
    again = client.post(f"/v1/connections/{conn['id']}/authorize", json={"consent": "api"}, headers=t.headers)
    assert again.status_code == 200 and again.get_json()["consent"] == "api" and consent_cookies(again) == []
    r = users_browser.get("/v1/oauth/callback?" + follow_consent(again.get_json()["authorize_url"]))
    assert r.status_code == 200 and r.get_json()["connection"]["status"] == "active"


@pytest.mark.parametrize("consent", ["email", "", None, 1, "API"])
def test_an_unknown_consent_mode_is_a_422_and_starts_nothing(client, make_tenant, consent):
    t = make_tenant("badmode")
    r = client.post("/v1/connections", json={"provider": "hubspot", "consent": consent}, headers=t.headers)
    assert r.status_code == 422 and r.content_type == "application/problem+json"
    assert consent_cookies(r) == []
    assert client.get("/v1/connections", headers=t.headers).get_json()["items"] == []
    conn = start(client, t, "hubspot", consent="api").get_json()
    r = client.post(f"/v1/connections/{conn['id']}/authorize", json={"consent": consent}, headers=t.headers)
    assert r.status_code == 422 and consent_cookies(r) == []


def test_an_idempotent_replay_does_not_hand_out_the_cookie_again(client, make_tenant):
    t = make_tenant("replay")
    headers = {**t.headers, "Idempotency-Key": "consent-replay-1"}
    first = client.post("/v1/connections", json={"provider": "asana"}, headers=headers)
    replay = client.post("/v1/connections", json={"provider": "asana"}, headers=headers)
    assert first.status_code == replay.status_code == 201 and replay.headers["Idempotent-Replayed"] == "true"
    assert consent_cookies(first) and consent_cookies(replay) == []


@pytest.mark.parametrize("failure", ["declined", "code refused"])
def test_a_failed_consent_started_through_the_api_still_answers_problem_json(client, make_tenant, sim, failure):
    """No page was set at the start (an API client drives its own consent): nowhere to send the browser, so the
    callback answers problem+json as before, and the connection is left pending with nothing bound."""
    t = make_tenant("apifail")
    if failure == "declined":
        sim.deny_consent("hubspot")
    else:
        sim.refuse_code_exchange("hubspot")
    created = start(client, t, "hubspot").get_json()
    query = follow_consent(created["authorize_url"])
    assert ("error" in parse_qs(query)) is (failure == "declined") and state_of(query)
    r = client.get("/v1/oauth/callback?" + query)
    assert r.status_code == 400 and r.content_type == "application/problem+json" and "Location" not in r.headers
    assert r.get_json()["type"].endswith("/bad-request")
    stored = row(t, created["id"])
    assert stored.status == "pending" and stored.tokens_sealed is None and stored.account_id is None
