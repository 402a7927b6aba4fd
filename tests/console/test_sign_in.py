"""Signing in to the console (OpenID Connect with PKCE against a real local provider), the session cookie,
logout, one-time development links, and a suspended tenant's users signed out."""
from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import requests

from console import oidc, sessions
from core.platform.actors import Actor
from core.tenants import service as tenants
from tests.console.conftest import dev_sign_in, post, sign_in


def test_a_tenant_user_signs_in_with_oidc_and_pkce_and_lands_on_the_page_asked_for(site, browser_client,
                                                                                 make_tenant):
    t = make_tenant("oidc")
    browser = browser_client()
    r = browser.get("/console/connections")
    assert r.status_code == 302 and "/console/login?next=/console/connections" in r.headers["Location"]
    r = sign_in(site, browser, subject="ana", tenant=t.slug, role="EDITOR", next_path="/console/connections")
    assert r.status_code == 303 and r.headers["Location"] == "/console/connections"
    page = browser.get("/console/connections")
    assert page.status_code == 200 and t.slug in page.get_data(as_text=True) and "EDITOR" in page.get_data(
        as_text=True)
    exchange = site.idp.token_requests[-1]
    assert exchange["grant_type"] == "authorization_code" and len(exchange["code_verifier"]) >= 43


def test_the_authorization_request_carries_pkce_s256_state_and_nonce(site, browser_client):
    r = browser_client().get("/console/login/start")
    query = parse_qs(urlsplit(r.headers["Location"]).query)
    assert query["code_challenge_method"] == ["S256"] and query["code_challenge"][0]
    assert query["state"][0] and query["nonce"][0] and "openid" in query["scope"][0].split()
    assert query["client_id"] == [site.settings.console_oidc_client_id]


def test_a_staff_member_signs_in_to_the_staff_pages(site, browser_client):
    browser = browser_client()
    assert sign_in(site, browser, subject="sam", staff=True).status_code == 303
    assert browser.get("/console/").headers["Location"].endswith("/console/staff/tenants")
    assert browser.get("/console/staff/tenants").status_code == 200


def test_a_sign_in_finishes_only_in_the_browser_that_started_it(site, browser_client, make_tenant):
    t = make_tenant("oidcb")
    starter, other = browser_client(), browser_client()
    site.idp.sign_in_as(subject="eve", tenant=t.slug, role="ADMIN")
    start = starter.get("/console/login/start")
    back = requests.get(start.headers["Location"], allow_redirects=False, timeout=10)
    callback = urlsplit(back.headers["Location"])
    refused = other.get(f"{callback.path}?{callback.query}")  # no login cookie of this flow
    assert refused.status_code == 400 and "text/html" in refused.content_type
    assert "not started in this browser" in refused.get_data(as_text=True)
    assert other.get_cookie(sessions.COOKIE, path=sessions.COOKIE_PATH) is None
    # the state was not spent by the other browser: the starter still finishes
    assert starter.get(f"{callback.path}?{callback.query}").status_code == 303
    again = starter.get(f"{callback.path}?{callback.query}")  # used once
    assert again.status_code == 400


def test_a_token_for_an_unknown_audience_signs_nobody_in(site, browser_client, monkeypatch):
    monkeypatch.setattr(site.idp, "audience", "some-other-api")
    r = sign_in(site, browser_client(), subject="mallory", tenant="whatever", role="ADMIN")
    assert r.status_code == 400 and "not one the API accepts" in r.get_data(as_text=True)
    assert "Traceback" not in r.get_data(as_text=True)


def test_the_session_cookie_is_httponly_secure_lax_and_scoped_to_the_console(site, browser_client, make_tenant):
    t = make_tenant("cookie")
    r = sign_in(site, browser_client(), subject="ana", tenant=t.slug, role="ADMIN")
    [header] = [h for h in r.headers.getlist("Set-Cookie") if h.startswith(sessions.COOKIE + "=")]
    attributes = {part.strip().split("=")[0].lower(): part.strip() for part in header.split(";")[1:]}
    assert {"httponly", "secure", "samesite", "path"} <= set(attributes)
    assert attributes["samesite"] == "SameSite=Lax" and attributes["path"] == "Path=/console"
    value = header.split(";")[0].split("=", 1)[1]
    assert sessions.load(value) is not None
    assert sessions.load(value[:-2] + ("AA" if not value.endswith("AA") else "BB")) is None  # signed


def test_logout_ends_the_session_even_for_a_copy_of_the_cookie(site, browser_client, make_tenant):
    t = make_tenant("logout")
    browser = dev_sign_in(browser_client(), tenant=t.slug)
    copy = browser.get_cookie(sessions.COOKIE, path=sessions.COOKIE_PATH).value
    r = post(site, browser, "/console/logout")
    assert r.status_code == 302 and "signed_out=logout" in r.headers["Location"]
    assert browser.get("/console/overview").status_code == 302  # to the sign-in page
    thief = browser_client()
    thief.set_cookie(sessions.COOKIE, copy, path=sessions.COOKIE_PATH)
    assert thief.get("/console/overview").status_code == 302


def test_a_development_link_works_once_and_only_when_enabled(site, browser_client, make_tenant, monkeypatch):
    t = make_tenant("devlink")
    from console import dev_links

    path = dev_links.issue(tenant=t.slug, role="VIEWER")
    first, second = browser_client(), browser_client()
    assert first.get(path).status_code == 303
    assert first.get("/console/overview").status_code == 200
    used = second.get(path)
    assert used.status_code == 404 and "text/html" in used.content_type
    from core.platform import runtime

    fresh = dev_links.issue(tenant=t.slug, role="VIEWER")
    import dataclasses

    monkeypatch.setattr(runtime, "_settings", dataclasses.replace(runtime.settings(), console_dev_login=False))
    assert second.get(fresh).status_code == 404
    assert b"one-time" not in second.get("/console/login").data


def test_a_suspended_tenants_users_are_signed_out_at_their_next_request(site, browser_client, make_tenant):
    t = make_tenant("susp")
    browser = dev_sign_in(browser_client(), tenant=t.slug)
    assert browser.get("/console/overview").status_code == 200
    tenants.update_tenant(t.slug, actor=Actor("staff", "pytest"), status="suspended")
    r = browser.get("/console/overview")
    assert r.status_code == 302 and "signed_out=suspended" in r.headers["Location"]
    assert browser.get_cookie(sessions.COOKIE, path=sessions.COOKIE_PATH) is None
    assert "suspended" in browser.get(r.headers["Location"]).get_data(as_text=True)
    tenants.update_tenant(t.slug, actor=Actor("staff", "pytest"), status="active")
    assert browser.get("/console/overview").status_code == 302  # the session is gone for good


def test_root_and_login_lead_to_the_console(site, browser_client):
    browser = browser_client()
    assert browser.get("/").headers["Location"].endswith("/console/")
    assert browser.get("/login").headers["Location"].endswith("/console/login")
    page = browser.get("/console/login")
    assert page.status_code == 200 and "Sign in" in page.get_data(as_text=True)
    assert oidc.configured()


def test_sign_in_needs_an_https_issuer_except_on_loopback(site, monkeypatch):
    import dataclasses

    from core.platform import runtime

    for issuer, ok in (("https://id.example.com", True), ("http://id.example.com", False), ("zixly-dev", False),
                       ("http://127.0.0.1:9", True)):
        monkeypatch.setattr(runtime, "_settings", dataclasses.replace(site.settings, jwt_issuer=issuer))
        assert oidc.configured() is ok, issuer


def test_a_consent_can_return_only_to_a_path_of_this_site(site, make_tenant):
    import pytest

    from core.connections import oauth
    from tenancy.context import tenant_context

    t = make_tenant("retto")
    with tenant_context(t.ref):
        for target in ("https://evil.example/console", "//evil.example/x", "/\\\\evil.example"):
            with pytest.raises(ValueError):
                oauth.start_connection(provider="asana", name="", options={}, actor=Actor("staff", "pytest"),
                                       return_to=target)
        from core.connections import store

        assert store.list_connections(limit=5) == []


def test_console_pages_forbid_framing_and_foreign_scripts_and_are_not_cached(site, browser_client):
    for path in ("/console/login", "/console/nope"):
        r = browser_client().get(path)
        assert r.headers["X-Frame-Options"] == "DENY" and "frame-ancestors 'none'" in r.headers[
            "Content-Security-Policy"] and "script-src 'self'" in r.headers["Content-Security-Policy"]
        assert r.headers["Cache-Control"] == "no-store", path
