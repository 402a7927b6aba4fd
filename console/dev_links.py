"""One-time sign-in links for development (`make run` prints them; `zixly console link` makes more).

Invariant: only when ZIXLY_CONSOLE_DEV_LOGIN is on (never in production); each link works once, within
`LINK_TTL`; Redis keeps only the hash of its token, with the person it signs in.
"""
from __future__ import annotations

import hashlib
import json
import secrets

from api.auth import RANK
from core.platform.runtime import redis_client, settings

LINK_TTL = 12 * 3600
PATH = "/console/dev-login/"


class DevLoginDisabled(RuntimeError):
    pass


def _key(token: str) -> str:
    return "zixly:console:dev-link:" + hashlib.sha256(token.encode()).hexdigest()


def issue(*, staff: bool = False, tenant: str | None = None, role: str = "ADMIN", subject: str | None = None) -> str:
    """The path of a fresh one-time link (append it to the console's base URL)."""
    if not settings().console_dev_login:
        raise DevLoginDisabled("one-time sign-in links need ZIXLY_CONSOLE_DEV_LOGIN=1 (development only)")
    if not staff and (not tenant or role not in RANK):
        raise ValueError("a tenant user's link names the tenant and a role")
    principal = ({"kind": "staff", "subject": subject or "dev-staff"} if staff else
                 {"kind": "user", "subject": subject or f"dev-{role.lower()}@{tenant}", "tenant": tenant,
                  "role": role, "email": f"{role.lower()}@{tenant}.example"})
    token = secrets.token_urlsafe(32)
    redis_client().set(_key(token), json.dumps(principal), ex=LINK_TTL)
    return PATH + token


def redeem(token: str) -> dict | None:
    """The person the link signs in, once; None for an unknown, used or expired link (or when disabled)."""
    if not settings().console_dev_login or not token or len(token) > 100:
        return None
    raw = redis_client().getdel(_key(token))
    return json.loads(raw) if raw else None
