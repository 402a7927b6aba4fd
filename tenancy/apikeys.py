"""Tenant API keys: `zx_live_<prefix><secret>`, stored as a public prefix and a SHA-256 of the whole key.

Keys carry 190+ bits of randomness, so a fast hash is the right tool (no password stretching needed); the
prefix finds the row, the hash is compared in constant time.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from tenancy.context import TenantRef
from tenancy.models import ROLES, ApiKey, Tenant

PREFIX_LEN = 12
_ALPHABET = string.ascii_lowercase + string.digits
ENVIRONMENTS = ("live", "test")


class InvalidApiKey(Exception):
    """The key is malformed, unknown, revoked or does not match."""


@dataclass(frozen=True)
class KeyPrincipal:
    key_id: str
    name: str
    role: str
    tenant: TenantRef
    environment: str = "live"  # live | test


def _hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def generate(environment: str = "live") -> tuple[str, str, str]:
    """Return (full secret, public prefix, hash)."""
    if environment not in ENVIRONMENTS:
        raise ValueError(f"environment must be one of {ENVIRONMENTS}")
    prefix = "".join(secrets.choice(_ALPHABET) for _ in range(PREFIX_LEN))
    raw = f"zx_{environment}_{prefix}{secrets.token_urlsafe(32)}"
    return raw, prefix, _hash(raw)


def parse_prefix(raw: str) -> str:
    for env in ENVIRONMENTS:
        head = f"zx_{env}_"
        if raw.startswith(head) and len(raw) >= len(head) + PREFIX_LEN + 20 and len(raw) <= 200:
            prefix = raw[len(head):len(head) + PREFIX_LEN]
            if all(c in _ALPHABET for c in prefix):
                return prefix
    raise InvalidApiKey("malformed API key")


def issue(session: Session, *, tenant_id: int, name: str, role: str, environment: str = "live",
          created_by: str | None = None) -> tuple[ApiKey, str]:
    """Add a key to the session; return it and the secret (shown once, never stored)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}")
    raw, prefix, digest = generate(environment)
    key = ApiKey(tenant_id=tenant_id, name=name, role=role, environment=environment, prefix=prefix,
                 secret_hash=digest, created_by=created_by)
    session.add(key)
    session.flush()
    return key, raw


def tenant_ref(tenant: Tenant) -> TenantRef:
    return TenantRef(id=tenant.id, slug=tenant.slug, schema=tenant.schema_name, shard=tenant.shard,
                     status=tenant.status, plan=tenant.plan)


def authenticate(session: Session, raw: str, *, last_used_resolution: int = 60) -> KeyPrincipal:
    """One catalog query; `last_used_at` is written at most once per key per `last_used_resolution` s."""
    prefix = parse_prefix(raw)
    row = session.execute(
        select(ApiKey, Tenant).join(Tenant, Tenant.id == ApiKey.tenant_id).where(ApiKey.prefix == prefix)
    ).first()
    digest = _hash(raw)
    if row is None:
        hmac.compare_digest(digest, digest)  # same work whether or not the prefix exists
        raise InvalidApiKey("unknown API key")
    key, tenant = row
    if not hmac.compare_digest(digest, key.secret_hash) or key.revoked_at is not None:
        raise InvalidApiKey("invalid or revoked API key")
    now = datetime.now(UTC)
    if key.last_used_at is None or now - key.last_used_at > timedelta(seconds=last_used_resolution):
        session.execute(update(ApiKey).where(ApiKey.id == key.id).values(last_used_at=now))
        session.commit()
    return KeyPrincipal(key_id=str(key.id), name=key.name, role=key.role, tenant=tenant_ref(tenant),
                        environment=key.environment)
