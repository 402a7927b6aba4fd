"""The one tenant context: set once per request and once per task, read by the session machinery.

Fail closed: asking for the tenant when none is set raises; nothing falls back to `catalog` or `public`.
"""
from __future__ import annotations

import re
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

# Always `SLUG_RE.fullmatch(...)`: with `.match`, `$` also matches before a trailing newline ("acme\n"). The
# pattern keeps `$` rather than `\Z` because the OpenAPI spec publishes it, and ECMA-262 regexes have no `\Z`.
SLUG_RE = re.compile(r"^[a-z][a-z0-9-]{2,39}$")


class NoTenantContext(RuntimeError):
    """A tenant-scoped operation ran with no tenant in context."""


class InvalidSlug(ValueError):
    pass


@dataclass(frozen=True)
class TenantRef:
    """What routing needs to know about a tenant; loaded from the catalog, never from input."""

    id: int
    slug: str
    schema: str
    shard: str
    status: str
    plan: str


_current: ContextVar[TenantRef | None] = ContextVar("zixly_tenant", default=None)


def validate_slug(slug: str) -> str:
    if not isinstance(slug, str) or not SLUG_RE.fullmatch(slug):
        raise InvalidSlug("slug must match ^[a-z][a-z0-9-]{2,39}$")
    return slug


def schema_for(slug: str) -> str:
    """Derive the schema name from a validated slug: `t_` + slug with '-' as '_' (slugs have no '_')."""
    return "t_" + validate_slug(slug).replace("-", "_")


def current_tenant() -> TenantRef:
    tenant = _current.get()
    if tenant is None:
        raise NoTenantContext("no tenant in context: tenant-scoped work must run inside tenant_context()")
    return tenant


def current_tenant_or_none() -> TenantRef | None:
    return _current.get()


def set_tenant(tenant: TenantRef | None):
    """Low-level setter for request/task hooks; returns the token to pass to reset_tenant()."""
    return _current.set(tenant)


def reset_tenant(token) -> None:
    _current.reset(token)


@contextmanager
def tenant_context(tenant: TenantRef):
    token = _current.set(tenant)
    try:
        yield tenant
    finally:
        _current.reset(token)


@contextmanager
def no_tenant():
    """Run a block explicitly outside any tenant (catalog work started from tenant code)."""
    token = _current.set(None)
    try:
        yield
    finally:
        _current.reset(token)


def tenant_key(*parts: str) -> str:
    """The one helper that names the tenant in Redis keys, S3 keys, log fields and metric labels."""
    tenant = current_tenant()
    return ":".join(("t", tenant.slug, *parts))
