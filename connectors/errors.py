"""Typed errors a provider call can end in, so workers know whether to retry, wait, re-authorise or give up."""
from __future__ import annotations


class ConnectorError(Exception):
    """Base of every provider failure. `detail` is short and safe to show (never a token or a secret)."""

    def __init__(self, provider: str, detail: str = ""):
        super().__init__(f"{provider}: {detail}" if detail else provider)
        self.provider = provider
        self.detail = detail


class ReauthRequired(ConnectorError):
    """The grant is gone (revoked, invalid_grant): only the tenant admin connecting again can fix it."""


class TokenRejected(ReauthRequired):
    """An API call answered 401. Refreshing once may fix it; if the refresh fails too, re-authorise."""


class RateLimited(ConnectorError):
    def __init__(self, provider: str, retry_after: float, detail: str = "", info=None):
        super().__init__(provider, detail or f"rate limited, retry after {retry_after:g} s")
        self.retry_after = retry_after
        self.info = info


class Transient(ConnectorError):
    """5xx, timeouts, connection failures: the same call may succeed later."""

    def __init__(self, provider: str, detail: str = "", status: int | None = None):
        super().__init__(provider, detail)
        self.status = status


class Permanent(ConnectorError):
    """The provider refused the request itself (4xx other than 401/429); retrying it unchanged cannot help."""

    def __init__(self, provider: str, status: int, detail: str = ""):
        super().__init__(provider, detail or f"HTTP {status}")
        self.status = status


class NotFound(Permanent):
    def __init__(self, provider: str, detail: str = ""):
        super().__init__(provider, 404, detail or "not found")


class InvalidOptions(ValueError):
    """Connection options a tenant supplied are unusable; `errors` maps each field to a message."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


class UnsafeAddress(InvalidOptions):
    """The host is not one Zixly may call (SSRF guard). Nothing was sent."""


class Unresolvable(UnsafeAddress):
    """The host name did not resolve. Refused like an unsafe address; at call time a DNS blip is transient."""
