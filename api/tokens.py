"""Bearer JWTs for people (joserfc): verified against a local public key or a JWKS URL; minted locally for dev.

Claims: `iss`, `aud`, `exp`, `sub`, and either `staff: true` or `tenant` + `role`.
"""
from __future__ import annotations

import json
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet

ALGORITHMS = ["ES256", "RS256"]
JWKS_TTL = 300
MAX_TOKEN_BYTES = 8192


class InvalidToken(Exception):
    pass


@dataclass(frozen=True)
class TokenClaims:
    subject: str
    staff: bool
    tenant: str | None
    role: str | None
    email: str | None


class TokenVerifier:
    def __init__(self, *, issuer: str, audience: str, public_key_file: str | None = None,
                 jwks_url: str | None = None):
        self.issuer, self.audience = issuer, audience
        self._jwks_url = jwks_url
        self._keys: KeySet | None = None
        self._fetched = 0.0
        self._lock = threading.Lock()
        if public_key_file:
            key = ECKey.import_key(Path(public_key_file).read_bytes())
            self._keys = KeySet([key])
        self._registry = jwt.JWTClaimsRegistry(
            iss={"essential": True, "value": issuer}, aud={"essential": True, "value": audience},
            exp={"essential": True}, sub={"essential": True}, leeway=30)

    @property
    def configured(self) -> bool:
        return self._keys is not None or self._jwks_url is not None

    def _keyset(self) -> KeySet:
        if self._jwks_url and time.monotonic() - self._fetched > JWKS_TTL:
            with self._lock:
                if time.monotonic() - self._fetched > JWKS_TTL:
                    with urllib.request.urlopen(self._jwks_url, timeout=5) as resp:
                        self._keys = KeySet.import_key_set(json.load(resp))
                    self._fetched = time.monotonic()
        if self._keys is None:
            raise InvalidToken("bearer tokens are not accepted: no verification key is configured")
        return self._keys

    def verify(self, token: str) -> TokenClaims:
        if len(token) > MAX_TOKEN_BYTES:
            raise InvalidToken("token too large")
        try:
            decoded = jwt.decode(token, self._keyset(), algorithms=ALGORITHMS)
            self._registry.validate(decoded.claims)
        except JoseError as exc:
            raise InvalidToken(f"invalid token: {exc.error}") from None
        except (ValueError, TypeError, KeyError):
            raise InvalidToken("malformed token") from None
        claims = decoded.claims
        staff = claims.get("staff") is True
        tenant, role = claims.get("tenant"), claims.get("role")
        if not staff and (not isinstance(tenant, str) or role not in ("ADMIN", "EDITOR", "VIEWER")):
            raise InvalidToken("token names neither staff nor a tenant and role")
        return TokenClaims(subject=str(claims["sub"]), staff=staff, tenant=None if staff else tenant,
                           role=None if staff else role, email=claims.get("email"))


def generate_signing_key(home: Path) -> None:
    """Create the local ES256 key pair `make run` uses, once."""
    private, public = home / "jwt-private.pem", home / "jwt-public.pem"
    if private.exists() and public.exists():
        return
    home.mkdir(parents=True, exist_ok=True)
    key = ECKey.generate_key("P-256")
    private.write_bytes(key.as_pem(private=True))
    private.chmod(0o600)
    public.write_bytes(key.as_pem(private=False))


def mint(private_key_file: Path, *, issuer: str, audience: str, subject: str, staff: bool = False,
         tenant: str | None = None, role: str | None = None, ttl: int = 3600, email: str | None = None) -> str:
    key = ECKey.import_key(Path(private_key_file).read_bytes())
    now = int(time.time())
    claims = {"iss": issuer, "aud": audience, "sub": subject, "iat": now, "exp": now + ttl}
    if staff:
        claims["staff"] = True
    else:
        claims.update(tenant=tenant, role=role)
    if email:
        claims["email"] = email
    return jwt.encode({"alg": "ES256", "kid": key.thumbprint()}, claims, key)
