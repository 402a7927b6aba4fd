"""Bearer tokens verified against a JWKS URL (an identity provider), served over real HTTP on loopback.

The clock is injected: a verifier on a machine booted a second ago fetches like any other, and the tests move
time forward instead of sleeping. The JWKS server counts its requests, so "no refetch storm" is measured.
"""
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from api import jwks
from api.tokens import InvalidToken, KeysUnavailable, TokenVerifier, mint
from core.platform.config import Settings

ISSUER, AUDIENCE, STAFF_AUDIENCE = "https://idp.example", "zixly-api", "zixly-api-staff"


class Clock:
    """A monotonic clock that starts where a just-booted machine's does."""

    def __init__(self, now=1.0):
        self.now = now

    def __call__(self):
        return self.now


class JwksServer:
    def __init__(self, *keys):
        self.keys, self.up, self.requests = list(keys), True, 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                outer.requests += 1
                if not outer.up:
                    self.send_error(503)
                    return
                body = json.dumps(KeySet(outer.keys).as_dict(private=False)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/jwks.json"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def rsa(kid):
    return RSAKey.generate_key(2048, parameters={"kid": kid})


K1, K2, K3 = rsa("k1"), rsa("k2"), rsa("k3")


@pytest.fixture()
def idp():
    server = JwksServer(K1)
    yield server
    server.close()


def verifier(idp, clock):
    return TokenVerifier(issuer=ISSUER, audience=AUDIENCE, staff_audience=STAFF_AUDIENCE, jwks_url=idp.url,
                         clock=clock)


def token(key, *, audience=AUDIENCE, **claims):
    claims = {"iss": ISSUER, "aud": audience, "sub": "u1", "exp": int(time.time()) + 60, **claims}
    return jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key)


def tenant_token(key):
    return token(key, tenant="acme", role="EDITOR")


def test_jwks_url_verification(idp):
    v = verifier(idp, time.monotonic)
    assert v.verify(tenant_token(K1)).role == "EDITOR"
    forged = jwt.encode({"alg": "RS256", "kid": "k1"}, {"iss": ISSUER, "aud": AUDIENCE, "sub": "u1",
                                                        "exp": int(time.time()) + 60, "tenant": "acme",
                                                        "role": "ADMIN"}, K2)
    with pytest.raises(InvalidToken):
        v.verify(forged)


def test_a_just_booted_machine_fetches_the_keys(idp):
    v = verifier(idp, Clock(1.0))  # monotonic time one second after boot: nothing was ever fetched
    assert v.verify(tenant_token(K1)).tenant == "acme"
    assert idp.requests == 1


def test_the_key_set_is_cached_then_refreshed_after_its_ttl(idp):
    clock = Clock()
    v = verifier(idp, clock)
    for _ in range(5):
        v.verify(tenant_token(K1))
    assert idp.requests == 1
    clock.now += jwks.TTL
    v.verify(tenant_token(K1))
    assert idp.requests == 2


def test_an_outage_is_unavailable_not_invalid_and_backs_off(idp):
    idp.up = False
    clock = Clock()
    v = verifier(idp, clock)
    for _ in range(20):
        with pytest.raises(KeysUnavailable) as caught:
            v.verify(tenant_token(K1))
        assert 1 <= caught.value.retry_after <= jwks.BACKOFF
    assert idp.requests == 1, "a failed fetch was retried on every request"
    clock.now += jwks.BACKOFF
    idp.up = True
    assert v.verify(tenant_token(K1)).role == "EDITOR"
    assert idp.requests == 2


def test_the_last_good_keys_serve_through_an_outage_until_too_old(idp):
    clock = Clock()
    v = verifier(idp, clock)
    v.verify(tenant_token(K1))
    idp.up = False
    clock.now += jwks.TTL
    for _ in range(10):
        assert v.verify(tenant_token(K1)).role == "EDITOR"
    assert idp.requests == 2  # one good fetch, one failed refresh, then backing off
    clock.now = 1.0 + jwks.MAX_STALE
    with pytest.raises(KeysUnavailable):
        v.verify(tenant_token(K1))


def test_an_unknown_kid_triggers_one_rate_limited_refresh(idp):
    clock = Clock()
    v = verifier(idp, clock)
    v.verify(tenant_token(K1))
    idp.keys = [K1, K2]  # the identity provider rotates in a new key
    assert v.verify(tenant_token(K2)).role == "EDITOR"
    assert idp.requests == 2
    for _ in range(10):  # a kid nobody publishes, right after that refresh: refused without asking again
        with pytest.raises(InvalidToken):
            v.verify(tenant_token(K3))
    assert idp.requests == 2, "unknown kids were not rate-limited"
    clock.now += jwks.KID_REFRESH
    for _ in range(10):
        with pytest.raises(InvalidToken):
            v.verify(tenant_token(K3))
    assert idp.requests == 3
    assert v.verify(tenant_token(K2)).role == "EDITOR"  # known kids never fetch
    assert idp.requests == 3


def test_the_staff_boundary_is_the_staff_audience(idp):
    v = verifier(idp, Clock())
    staff = v.verify(token(K1, audience=STAFF_AUDIENCE, staff=True))
    assert staff.staff and staff.tenant is None
    refused = {
        "tenant audience claiming staff": token(K1, staff=True),
        "tenant audience claiming staff, with a tenant": token(K1, staff=True, tenant="acme", role="ADMIN"),
        "staff audience without the staff claim": token(K1, audience=STAFF_AUDIENCE, tenant="acme", role="ADMIN"),
        "both audiences": token(K1, audience=[AUDIENCE, STAFF_AUDIENCE], staff=True),
        "another audience": token(K1, audience="zixly-api-other", staff=True),
    }
    for label, bad in refused.items():
        with pytest.raises(InvalidToken):
            v.verify(bad)
            pytest.fail(label)
    assert not v.verify(token(K1, staff=False, tenant="acme", role="VIEWER")).staff


def test_the_staff_audience_is_its_own_setting():
    assert Settings(database_url="x", redis_url="y").jwt_staff_audience == "zixly-api-staff"
    assert Settings(database_url="x", redis_url="y", jwt_audience="a").jwt_staff_audience == "a-staff"
    assert Settings(database_url="x", redis_url="y", jwt_staff_audience="ops").jwt_staff_audience == "ops"
    with pytest.raises(ValueError):
        TokenVerifier(issuer=ISSUER, audience="same", staff_audience="same")


def test_an_outage_answers_503_problem_over_http(app, client, monkeypatch):
    down = JwksServer(K1)
    down.up = False
    try:
        monkeypatch.setitem(app.extensions, "zixly_tokens", verifier(down, Clock()))
        for _ in range(5):
            r = client.get("/v1/staff/tenants",
                           headers={"Authorization": f"Bearer {token(K1, audience=STAFF_AUDIENCE, staff=True)}"})
            assert r.status_code == 503 and r.content_type == "application/problem+json"
            assert r.get_json()["type"].endswith("/token-keys-unavailable")
            assert int(r.headers["Retry-After"]) >= 1 and r.headers["X-Request-ID"]
        assert down.requests == 1
    finally:
        down.close()


def test_a_tenant_audience_token_claiming_staff_is_refused_over_http(client, settings, jwt_keys, tokens):
    forged = mint(jwt_keys / "jwt-private.pem", issuer=settings.jwt_issuer, audience=settings.jwt_audience,
                  subject="mallory", staff=True)
    r = client.get("/v1/staff/tenants", headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401 and r.content_type == "application/problem+json"
    r = client.get("/v1/staff/tenants", headers={"Authorization": f"Bearer {tokens(staff=True)}"})
    assert r.status_code == 200
