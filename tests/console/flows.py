"""What a browser does in the console's connection flows, for the test-client tests."""
from __future__ import annotations

from urllib.parse import urlsplit

import requests

from tests.console.conftest import post


def follow_to_provider_and_back(location: str) -> str:
    """The provider's consent page (it always consents) redirects to our callback: its path and query."""
    back = requests.get(location, allow_redirects=False, timeout=10)
    assert back.status_code == 302, back.text
    callback = urlsplit(back.headers["Location"])
    return f"{callback.path}?{callback.query}"


def connect(site, browser, provider: str, name: str = "") -> str:
    """Connect through the console; the id of the connection (its page is where the browser landed)."""
    r = post(site, browser, "/console/connections", {"provider": provider, "name": name or provider})
    assert r.status_code == 303, r.get_data(as_text=True)
    landed = browser.get(follow_to_provider_and_back(r.headers["Location"]))
    assert landed.status_code == 302 and landed.headers["Location"].startswith("/console/connections/return?")
    page = browser.get(landed.headers["Location"])
    assert page.status_code == 303
    return page.headers["Location"].rsplit("/", 1)[1]
