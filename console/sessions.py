"""Console sessions: kept server-side in Redis, named by a random id carried in a signed cookie.

Invariant: the cookie (`zixly_console`) is HttpOnly, SameSite=Lax, Path=/console, Secure unless development
turned it off, and signed with the console's secret key; it holds only the session id. Logout deletes the
record, so a copied cookie is dead too. A record lives `console_session_seconds` at most. Each session has
its own CSRF token (console/guard.py checks it on every form) and its flash messages.
"""
from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import asdict, dataclass, field

from itsdangerous import BadSignature, URLSafeSerializer

from core.platform.runtime import redis_client, settings

COOKIE = "zixly_console"
COOKIE_PATH = "/console"
_SALT = "zixly-console-session"


class ConsoleNotConfigured(RuntimeError):
    """No secret key for signing session cookies (ZIXLY_CONSOLE_SECRET_KEY)."""


@dataclass
class ConsoleSession:
    kind: str  # "user" (a tenant's person) or "staff"
    subject: str
    tenant: str | None = None  # the tenant's slug, for users
    role: str | None = None  # VIEWER | EDITOR | ADMIN, for users
    email: str | None = None
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    flashes: list = field(default_factory=list)
    created_at: float = field(default_factory=time.time)
    id: str = ""  # the cookie's session id (not stored in the record)

    @property
    def display_name(self) -> str:
        return self.email or self.subject


def _serializer() -> URLSafeSerializer:
    key = settings().console_secret_key
    if not key:
        raise ConsoleNotConfigured("set ZIXLY_CONSOLE_SECRET_KEY to sign console session cookies")
    return URLSafeSerializer(key, salt=_SALT)


def _key(session_id: str) -> str:
    return "zixly:console:session:" + hashlib.sha256(session_id.encode()).hexdigest()


def _ttl(session: ConsoleSession) -> int:
    return max(1, int(session.created_at + settings().console_session_seconds - time.time()))


def create(**principal) -> tuple[ConsoleSession, str]:
    """A new session for a signed-in person; returns it and the cookie value to set."""
    session = ConsoleSession(**principal, id=secrets.token_urlsafe(32))
    save(session)
    return session, _serializer().dumps(session.id)


def save(session: ConsoleSession) -> None:
    record = {k: v for k, v in asdict(session).items() if k != "id"}
    redis_client().set(_key(session.id), json.dumps(record), ex=_ttl(session))


def load(cookie: str | None) -> ConsoleSession | None:
    """The session the cookie names, or None (no cookie, a bad signature, expired or logged out)."""
    if not cookie or len(cookie) > 512:
        return None
    try:
        session_id = _serializer().loads(cookie)
    except BadSignature:
        return None
    if not isinstance(session_id, str):
        return None
    raw = redis_client().get(_key(session_id))
    if raw is None:
        return None
    return ConsoleSession(**json.loads(raw), id=session_id)


def destroy(session: ConsoleSession) -> None:
    redis_client().delete(_key(session.id))


def flash(session: ConsoleSession, message: str, kind: str = "info") -> None:
    session.flashes.append({"message": message, "kind": kind})
    save(session)


def pop_flashes(session: ConsoleSession) -> list[dict]:
    flashes, session.flashes = session.flashes, []
    if flashes:
        save(session)
    return flashes


def cookie_options() -> dict:
    return {"path": COOKIE_PATH, "httponly": True, "samesite": "Lax", "secure": settings().console_cookie_secure}
