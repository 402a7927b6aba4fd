"""Errors services raise and entry points translate (HTTP status, task retry)."""


class NotFound(LookupError):
    code = "not-found"


class Conflict(Exception):
    code = "conflict"


class Invalid(ValueError):
    code = "invalid"


class RetryableError(Exception):
    """A step failed in a way that may succeed later (timeouts, 5xx, rate limits).
    `retry_after`: the least number of seconds to wait (a provider's Retry-After)."""

    def __init__(self, message: str = "", retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(Exception):
    """A step failed in a way that retrying cannot fix (bad input, 4xx)."""


class BadRequest(ValueError):
    """The request cannot be acted on as sent (400): a spent OAuth state, a provider's refusal of consent."""

    code = "bad-request"


class Forbidden(PermissionError):
    """Understood, but this caller may not do it (403): a consent completed in another browser."""

    code = "forbidden"


class Unavailable(Exception):
    """A dependency we need right now is down or not configured (503); nothing was changed."""

    code = "unavailable"


class UpstreamFailed(Exception):
    """The provider answered with an error we cannot pass on as the caller's fault (502)."""

    code = "upstream-failed"
