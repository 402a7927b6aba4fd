"""Signing in with OpenID Connect: authorization code + PKCE (authlib) at the issuer the API trusts.

Invariants: a sign-in completes only in the browser that started it (its state, nonce and PKCE verifier are
kept server-side under a random id held by a short-lived HttpOnly cookie of that browser, and used once); the
ID token is verified (signature by the issuer's JWKS, issuer, audience = this client, expiry, nonce); who the
person is and what they may do come from the access token, verified by the API's own TokenVerifier, so the
console trusts exactly the claims the API trusts (tenant + role, or staff on the staff audience).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
from authlib.integrations.requests_client import OAuth2Session
from joserfc import jwt
from joserfc.errors import JoseError

from api.jwks import JwksCache, KeysUnavailable
from api.tokens import InvalidToken, TokenClaims, TokenVerifier
from core.platform.runtime import redis_client, settings

LOGIN_COOKIE = "zixly_console_login"
LOGIN_TTL = 600
DISCOVERY_TTL = 300
TIMEOUT = 10
SCOPE = "openid email profile"


class SignInFailed(Exception):
    """The sign-in cannot complete; the message is safe to show."""


@dataclass(frozen=True)
class Started:
    url: str
    login_id: str  # the value of the browser's login cookie


_discovery: dict[str, tuple[float, dict]] = {}
_jwks: dict[str, JwksCache] = {}
_lock = threading.Lock()


def configured() -> bool:
    """A client id and an issuer URL: https, or plain http on loopback only (a local provider in tests)."""
    s = settings()
    parts = urlsplit(s.jwt_issuer)
    secure = parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost"))
    return bool(s.console_oidc_client_id and secure and parts.hostname)


def _metadata() -> dict:
    issuer = settings().jwt_issuer.rstrip("/")
    with _lock:
        cached = _discovery.get(issuer)
        if cached and cached[0] > time.monotonic():
            return cached[1]
    try:
        answer = requests.get(f"{issuer}/.well-known/openid-configuration", timeout=TIMEOUT)
        answer.raise_for_status()
        meta = answer.json()
    except (requests.RequestException, ValueError) as exc:
        raise SignInFailed(f"the identity provider cannot be reached right now ({type(exc).__name__})") from None
    if meta.get("issuer", "").rstrip("/") != issuer:
        raise SignInFailed("the identity provider's discovery document names another issuer")
    with _lock:
        _discovery[issuer] = (time.monotonic() + DISCOVERY_TTL, meta)
    return meta


def _client(redirect_uri: str) -> OAuth2Session:
    s = settings()
    return OAuth2Session(s.console_oidc_client_id, s.console_oidc_client_secret, scope=SCOPE,
                         redirect_uri=redirect_uri, code_challenge_method="S256",
                         token_endpoint_auth_method="client_secret_basic" if s.console_oidc_client_secret
                         else "none")


def _key(login_id: str) -> str:
    return "zixly:console:login:" + hashlib.sha256(login_id.encode()).hexdigest()


def start(*, redirect_uri: str, next_path: str) -> Started:
    meta = _metadata()
    verifier, nonce, login_id = secrets.token_urlsafe(64), secrets.token_urlsafe(24), secrets.token_urlsafe(32)
    url, state = _client(redirect_uri).create_authorization_url(
        meta["authorization_endpoint"], code_verifier=verifier, nonce=nonce)
    record = {"state": state, "nonce": nonce, "verifier": verifier, "redirect_uri": redirect_uri, "next": next_path}
    redis_client().set(_key(login_id), json.dumps(record), ex=LOGIN_TTL)
    return Started(url, login_id)


def finish(*, login_id: str | None, params: dict, verifier: TokenVerifier) -> tuple[TokenClaims, str]:
    """The person the issuer vouched for, and the page they were going to."""
    if not login_id:
        raise SignInFailed("this sign-in was not started in this browser; start again")
    raw = redis_client().getdel(_key(login_id))
    if raw is None:
        raise SignInFailed("this sign-in has expired or was already used; start again")
    record = json.loads(raw)
    if not hmac.compare_digest(str(params.get("state", "")), record["state"]):
        raise SignInFailed("this sign-in answer belongs to another sign-in; start again")
    if params.get("error"):
        raise SignInFailed(f"the identity provider refused: {str(params['error'])[:100]}")
    if not params.get("code"):
        raise SignInFailed("the identity provider sent no authorization code")
    meta = _metadata()
    try:
        token = _client(record["redirect_uri"]).fetch_token(
            meta["token_endpoint"], grant_type="authorization_code", code=params["code"],
            code_verifier=record["verifier"], timeout=TIMEOUT)
    except Exception as exc:  # authlib raises OAuthError, requests its own: either way, no sign-in
        raise SignInFailed(f"the identity provider did not exchange the code ({type(exc).__name__})") from None
    identity = _verify_id_token(token.get("id_token"), meta, record["nonce"])
    try:
        claims = verifier.verify(token.get("access_token") or "")
    except InvalidToken as exc:
        raise SignInFailed(f"the access token is not one the API accepts ({exc})") from None
    if claims.subject != str(identity.get("sub")):
        raise SignInFailed("the ID token and the access token name different people")
    return claims, record["next"]


def _verify_id_token(id_token: str | None, meta: dict, nonce: str) -> dict:
    if not id_token:
        raise SignInFailed("the identity provider sent no ID token")
    uri = meta.get("jwks_uri")
    if not uri:
        raise SignInFailed("the identity provider publishes no keys (jwks_uri)")
    with _lock:
        cache = _jwks.setdefault(uri, JwksCache(uri))
    try:
        decoded = jwt.decode(id_token, cache.keys(), algorithms=["ES256", "RS256"])
        jwt.JWTClaimsRegistry(iss={"essential": True, "value": meta["issuer"]},
                              aud={"essential": True, "value": settings().console_oidc_client_id},
                              exp={"essential": True}, sub={"essential": True},
                              nonce={"essential": True, "value": nonce}, leeway=30).validate(decoded.claims)
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise SignInFailed(f"the ID token is not valid ({type(exc).__name__})") from None
    except KeysUnavailable as exc:
        raise SignInFailed(f"the identity provider's keys cannot be fetched ({exc})") from None
    return decoded.claims
