"""The simulators hold providers' rules on their side too, so a lax connector cannot pass by accident."""
from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
import time

import pytest
import requests

from sandbox import Simulator


@pytest.fixture
def sim():
    simulator = Simulator(poll_interval=0.02).start()
    simulator.register_app("xero", "xid", "xsecret", ["https://z.test/cb"])
    simulator.register_app("asana", "aid", "asecret", ["https://z.test/cb"])
    yield simulator
    simulator.stop()


def code_for(sim, provider: str, client_id: str, host: str, path: str, **extra) -> str:
    answer = requests.get(f"{sim.url}/{provider}/{host}{path}", allow_redirects=False, timeout=5,
                          params={"client_id": client_id, "redirect_uri": "https://z.test/cb", "state": "s",
                                  "response_type": "code", **extra})
    assert answer.status_code == 302
    return answer.headers["Location"].split("code=")[1].split("&")[0]


def xero_token(sim, data: dict, auth=("xid", "xsecret")):
    return requests.post(f"{sim.url}/xero/identity.xero.com/connect/token", data=data, auth=auth, timeout=5)


def test_xero_token_endpoint_wants_basic_auth_and_the_same_redirect_uri(sim):
    code = code_for(sim, "xero", "xid", "login.xero.com", "/identity/connect/authorize")
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": "https://z.test/cb"}
    assert xero_token(sim, {**form, "client_id": "xid", "client_secret": "xsecret"}, auth=None).status_code == 401
    assert xero_token(sim, {**form, "redirect_uri": "https://z.test/other"}).json()["error"] == "invalid_grant"
    answer = xero_token(sim, form)
    assert answer.status_code == 200 and answer.json()["expires_in"] == 1800
    assert xero_token(sim, form).json()["error"] == "invalid_grant"
    assert sim.token_requests("xero", "authorization_code") == 4


def test_pkce_plain_is_refused_and_s256_is_checked(sim):
    base = f"{sim.url}/asana/app.asana.com/-/oauth_authorize"
    plain = requests.get(base, params={"client_id": "aid", "redirect_uri": "https://z.test/cb",
                                       "code_challenge": "abc", "code_challenge_method": "plain"},
                         allow_redirects=False, timeout=5)
    assert plain.status_code == 400
    verifier = "v" * 50
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    code = code_for(sim, "asana", "aid", "app.asana.com", "/-/oauth_authorize", code_challenge=challenge,
                    code_challenge_method="S256")
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": "https://z.test/cb",
            "client_id": "aid", "client_secret": "asecret"}
    url = f"{sim.url}/asana/app.asana.com/-/oauth_token"
    assert requests.post(url, data=form, timeout=5).json()["error"] == "invalid_grant"   # no verifier: refused
    ok = requests.post(url, data={**form, "code_verifier": verifier}, timeout=5)
    assert ok.status_code == 200 and ok.json()["data"]["gid"]


def test_expired_codes_are_refused(sim):
    code = code_for(sim, "xero", "xid", "login.xero.com", "/identity/connect/authorize")
    sim.authority.codes[code].expires_at = time.time() - 1
    answer = xero_token(sim, {"grant_type": "authorization_code", "code": code, "redirect_uri": "https://z.test/cb"})
    assert answer.json()["error"] == "invalid_grant"


def test_api_needs_a_live_token_and_unknown_paths_are_404(sim):
    assert requests.get(f"{sim.url}/xero/api.xero.com/connections", timeout=5).status_code == 401
    assert requests.get(f"{sim.url}/xero/api.xero.com/nothing", timeout=5).status_code == 404
    assert requests.get(f"{sim.url}/nobody/x/y", timeout=5).status_code == 404
    assert requests.delete(f"{sim.url}/asana/app.asana.com/-/oauth_token", timeout=5).status_code == 405
    assert [c.status for c in sim.calls()] == [401, 404, 404, 405]


def test_configured_lifetime_and_rotation(sim):
    sim.configure("xero", access_ttl=60, rotate_refresh=False)
    code = code_for(sim, "xero", "xid", "login.xero.com", "/identity/connect/authorize")
    first = xero_token(sim, {"grant_type": "authorization_code", "code": code, "redirect_uri": "https://z.test/cb"})
    assert first.json()["expires_in"] == 60
    again = xero_token(sim, {"grant_type": "refresh_token", "refresh_token": first.json()["refresh_token"]})
    assert "refresh_token" not in again.json()


def test_runs_standalone_and_prints_its_url():
    process = subprocess.Popen([sys.executable, "-m", "sandbox", "--port", "0", "--app", "asana:a:b"],
                               stdout=subprocess.PIPE, text=True)
    try:
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        answer = requests.get(f"{url}/asana/app.asana.com/-/oauth_authorize", allow_redirects=False, timeout=5,
                              params={"client_id": "a", "redirect_uri": "https://z.test/cb"})
        assert answer.status_code == 302
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_racing_refreshes_of_a_rotating_token_one_wins(sim):
    from concurrent.futures import ThreadPoolExecutor
    sim.configure("xero", refresh_grace=0)
    code = code_for(sim, "xero", "xid", "login.xero.com", "/identity/connect/authorize")
    refresh = xero_token(sim, {"grant_type": "authorization_code", "code": code,
                               "redirect_uri": "https://z.test/cb"}).json()["refresh_token"]
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: xero_token(sim, {"grant_type": "refresh_token", "refresh_token": refresh}),
                                range(4)))
    assert sorted(a.status_code for a in answers) == [200, 400, 400, 400]
