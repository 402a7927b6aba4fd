"""Bearer JWTs for people (joserfc): verified against a local public key or a JWKS URL; minted locally for dev.

Claims: `iss`, `aud`, `exp`, `sub`, and either `staff: true` or `tenant` + `role`. The staff boundary is the
audience: a token is staff only when its `aud` is the staff audience AND it says `staff: true`; a token for the
tenant audience is never staff (one that claims `staff` is refused), and one naming both audiences is refused.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet, guess_key

from api.jwks import JwksCache, KeysUnavailable

ALGORITHMS = ["ES256", "RS256"]
MAX_TOKEN_BYTES = 8192
ROLES = ("ADMIN", "EDITOR", "VIEWER")

__all__ = ["InvalidToken", "KeysUnavailable", "TokenClaims", "TokenVerifier", "generate_signing_key", "mint"]


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
    def __init__(self, *, issuer: str, audience: str, staff_audience: str, public_key_file: str | None = None,
                 jwks_url: str | None = None, clock: Callable[[], float] = time.monotonic):
        if staff_audience == audience:
            raise ValueError("the staff audience must differ from the tenant audience")
        self.issuer, self.audience, self.staff_audience = issuer, audience, staff_audience
        self._jwks = JwksCache(jwks_url, clock=clock) if jwks_url else None
        self._keys: KeySet | None = None
        if public_key_file:
            key = ECKey.import_key(Path(public_key_file).read_bytes())
            self._keys = KeySet([key])
        self._registry = jwt.JWTClaimsRegistry(
            iss={"essential": True, "value": issuer}, aud={"essential": True, "values": [audience, staff_audience]},
            exp={"essential": True}, sub={"essential": True}, leeway=30)

    @property
    def configured(self) -> bool:
        return self._keys is not None or self._jwks is not None

    def _keyset(self) -> KeySet:
        if self._jwks is not None:
            return self._jwks.keys()  # KeysUnavailable propagates: the caller answers 503, not 401
        if self._keys is None:
            raise InvalidToken("bearer tokens are not accepted: no verification key is configured")
        return self._keys

    def _key_for(self, keys: KeySet):
        def resolve(obj):
            kid = obj.headers().get("kid")
            if (self._jwks is not None and kid is not None and all(k.kid != kid for k in keys.keys)
                    and self._jwks.refresh_for_unknown_kid()):
                return guess_key(self._jwks.keys(), obj)
            return guess_key(keys, obj)

        return resolve

    def verify(self, token: str) -> TokenClaims:
        """The token's claims; raises InvalidToken (401) or KeysUnavailable (503, the keys cannot be had now)."""
        if len(token) > MAX_TOKEN_BYTES:
            raise InvalidToken("token too large")
        keys = self._keyset()
        try:
            decoded = jwt.decode(token, self._key_for(keys), algorithms=ALGORITHMS)
            self._registry.validate(decoded.claims)
        except JoseError as exc:
            raise InvalidToken(f"invalid token: {exc.error}") from None
        except (ValueError, TypeError, KeyError):
            raise InvalidToken("malformed token") from None
        return self._claims(decoded.claims)

    def _claims(self, claims: dict) -> TokenClaims:
        aud = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        for_staff, for_tenant = self.staff_audience in aud, self.audience in aud
        if for_staff and for_tenant:
            raise InvalidToken("token names both the tenant and the staff audience")
        email = claims.get("email")
        if for_staff:
            if claims.get("staff") is not True:
                raise InvalidToken("a token for the staff audience must carry `staff: true`")
            return TokenClaims(subject=str(claims["sub"]), staff=True, tenant=None, role=None, email=email)
        if claims.get("staff", False) is not False:
            raise InvalidToken("a token for the tenant audience cannot be a staff token")
        tenant, role = claims.get("tenant"), claims.get("role")
        if not isinstance(tenant, str) or role not in ROLES:
            raise InvalidToken("token names no tenant and role")
        return TokenClaims(subject=str(claims["sub"]), staff=False, tenant=tenant, role=role, email=email)


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
    """A development token; `audience` is the staff audience for a staff token, the tenant audience otherwise."""
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
