"""The whole site (API + console) for the console's tests: a real HTTP server in a thread, the provider
simulators, and a local OpenID Connect provider that is the issuer the API trusts for these tests.

Sign-in helpers: `sign_in(client, ...)` goes through the real OIDC flow (the test client plays the browser,
the provider is a real server); `dev_sign_in` uses a one-time development link.
"""
from __future__ import annotations

import base64
import dataclasses
import os
import secrets
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from sqlalchemy import delete
from werkzeug.serving import make_server

from console import dev_links, sessions
from core import bootstrap
from core.outbound import queues
from core.platform import aws
from sandbox import Simulator
from tenancy.db import catalog_transaction
from tenancy.models import AccountIndex
from tests.console.oidc_provider import OidcProvider

PROVIDERS = ("xero", "hubspot", "shopify", "asana", "salesforce")
APPS = {p: (f"zixly-{p}-client", f"zixly-{p}-secret-{uuid.uuid4().hex}") for p in PROVIDERS}
CLIENT_ID, CLIENT_SECRET = "zixly-console", f"console-secret-{uuid.uuid4().hex}"
XERO_WEBHOOK_KEY = base64.b64encode(secrets.token_bytes(48)).decode()  # Xero's webhooks key for Zixly's app
OUTBOUND = ("xero", "hubspot")


@dataclass
class Site:
    app: object
    url: str
    sim: Simulator
    idp: OidcProvider
    settings: object


@pytest.fixture(scope="package")
def site(app, settings, jwt_keys, servers):
    holder = {}
    server = make_server("127.0.0.1", 0, lambda env, start: holder["app"](env, start), threaded=True)
    url = f"http://127.0.0.1:{server.server_port}"
    sim = Simulator(poll_interval=0.02).start()
    for provider, (cid, secret) in APPS.items():
        sim.register_app(provider, cid, secret, [f"{url}/v1/oauth/callback"],
                         webhook_key=XERO_WEBHOOK_KEY if provider == "xero" else None)
    idp = OidcProvider(jwt_keys / "jwt-private.pem", client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                       audience=settings.jwt_audience, staff_audience=settings.jwt_staff_audience).start()
    local = dataclasses.replace(
        settings, jwt_issuer=idp.url, console_oidc_client_id=CLIENT_ID, console_oidc_client_secret=CLIENT_SECRET,
        console_secret_key=uuid.uuid4().hex, console_dev_login=True, console_cookie_secure=True,
        public_base_url=url, provider_simulator_url=sim.url, provider_credentials=dict(APPS),
        console_stream_seconds=5, outbound_queue_prefix=f"co{os.getpid()}{secrets.token_hex(3)}",
        app_webhook_secrets={"xero": (XERO_WEBHOOK_KEY,), "hubspot": (APPS["hubspot"][1],),
                             "shopify": (APPS["shopify"][1],)},
        outbound_quotas={"hubspot": "1000/1", "xero": "1000/1"})
    from console.app import create_app

    holder["app"] = create_app(local)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(name, servers.get(name, "testing"))
    aws.ensure_outbound_queues(queues.sqs_client(), prefix=local.outbound_queue_prefix, providers=OUTBOUND,
                               visibility=3, max_receive=3)
    thread = threading.Thread(target=server.serve_forever, name="console-site", daemon=True)
    thread.start()
    yield Site(holder["app"], url, sim, idp, local)
    server.shutdown()
    thread.join(timeout=10)
    idp.stop()
    sim.stop()
    bootstrap.init(settings)


@pytest.fixture()
def free_accounts(site):
    """The simulators' fixed accounts released after each test, so the next can connect them afresh."""
    yield
    with catalog_transaction() as session:
        session.execute(delete(AccountIndex).where(AccountIndex.provider.in_(list(PROVIDERS))))


@pytest.fixture()
def browser_client(site):
    """A browser: the test client of the whole site, with its own cookie jar."""
    def make():
        return site.app.test_client()
    return make


def dev_sign_in(client, *, tenant=None, role="ADMIN", staff=False, subject=None):
    path = dev_links.issue(staff=staff, tenant=tenant, role=role, subject=subject)
    r = client.get(path)
    assert r.status_code == 303, r.get_data(as_text=True)
    return client


def sign_in(site, client, *, subject, tenant=None, role=None, staff=False, next_path=None):
    """The real OIDC flow: the console sends the browser to the provider, which sends it back with a code."""
    site.idp.sign_in_as(subject=subject, tenant=tenant, role=role, staff=staff)
    r = client.get("/console/login/start", query_string={"next": next_path} if next_path else None)
    assert r.status_code == 303 and r.headers["Location"].startswith(site.idp.url + "/authorize?")
    back = requests.get(r.headers["Location"], allow_redirects=False, timeout=10)
    assert back.status_code == 302
    callback = urlsplit(back.headers["Location"])
    return client.get(f"{callback.path}?{callback.query}")


def csrf_of(client) -> str:
    session = sessions.load(client.get_cookie(sessions.COOKIE, path=sessions.COOKIE_PATH).value)
    return session.csrf


def post(site, client, path, data=None, *, origin=True, token=True):
    """A form post as the browser sends it: this site's Origin and the session's CSRF token."""
    form = dict(data or {})
    if token:
        form.setdefault("csrf_token", csrf_of(client))
    headers = {"Origin": site.url} if origin is True else ({"Origin": origin} if origin else {})
    return client.post(path, data=form, headers=headers)


# --- the real browser: Debian's Chromium driven by Playwright, one browser per session ------------------------
CHROMIUM = os.environ.get("ZIXLY_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SCREENSHOTS = Path(os.environ.get("ZIXLY_SCREENSHOTS") or Path(__file__).resolve().parents[2] / "build" / "screenshots")


@pytest.fixture(scope="session")
def chromium():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make chromium` installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture()
def new_page(chromium):
    """A fresh browser profile (its own cookies) per call: `new_page(width=390)` for a phone."""
    contexts = []

    def make(width: int = 1280, height: int = 860):
        context = chromium.new_context(viewport={"width": width, "height": height})
        context.set_default_timeout(15_000)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


def shot(page, name: str) -> None:
    """Keep a screenshot of the page as a test artefact (build/screenshots, or ZIXLY_SCREENSHOTS)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def browser_sign_in(site, page, **person):
    site.idp.sign_in_as(**person)
    page.goto(f"{site.url}/console/login")
    page.get_by_role("link", name="Sign in with your organisation's account").click()
    page.wait_for_url("**/console/**")
