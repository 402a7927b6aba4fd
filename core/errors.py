"""Errors services raise and entry points translate (HTTP status, task retry)."""


class NotFound(LookupError):
    code = "not-found"


class Conflict(Exception):
    code = "conflict"


class Invalid(ValueError):
    code = "invalid"


class RetryableError(Exception):
    """A step failed in a way that may succeed later (timeouts, 5xx, rate limits)."""


class PermanentError(Exception):
    """A step failed in a way that retrying cannot fix (bad input, 4xx)."""
