"""Rate-limit signals from every provider's response headers, read into one small value."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

DEFAULT_WAIT = 10.0


@dataclass(frozen=True)
class Quota:
    """How fast Zixly may call a provider for one connected account: a token bucket of `capacity` calls,
    refilled at `refill` calls per second. Outbound delivery takes one token per call."""

    capacity: float
    refill: float

    @classmethod
    def per_window(cls, calls: int, seconds: float, burst: int | None = None) -> Quota:
        """A "N calls per S seconds" limit. Any S-second window then sees at most burst + refill * S = N calls
        (a bucket as large as N would allow almost 2N in the first window)."""
        burst = burst if burst is not None else max(1, calls // 10)
        if not 0 < burst <= calls or seconds <= 0:
            raise ValueError("a quota needs 0 < burst <= calls and a positive window")
        return cls(float(burst), (calls - burst) / seconds)

    @classmethod
    def parse(cls, text: str) -> Quota:
        """`100/10` (calls per seconds) or `100/10+5` (with an explicit burst)."""
        rate, _, burst = text.strip().partition("+")
        calls, _, seconds = rate.partition("/")
        try:
            return cls.per_window(int(calls), float(seconds), int(burst) if burst else None)
        except ValueError:
            raise ValueError(f"quota {text!r} is not CALLS/SECONDS[+BURST]") from None


@dataclass(frozen=True)
class Window:
    remaining: int | None
    limit: int | None = None


@dataclass(frozen=True)
class RateLimitInfo:
    retry_after: float | None = None          # seconds, from Retry-After
    problem: str | None = None                # which limit ran out (Xero's X-Rate-Limit-Problem)
    interval: float | None = None             # HubSpot's window length in seconds
    windows: dict[str, Window] = field(default_factory=dict)

    @property
    def remaining(self) -> int | None:
        counts = [w.remaining for w in self.windows.values() if w.remaining is not None]
        return min(counts) if counts else None

    def wait_seconds(self) -> float:
        """How long to wait after a 429: Retry-After when given, else the provider's window, else a default."""
        if self.retry_after is not None:
            return self.retry_after
        return self.interval if self.interval else DEFAULT_WAIT


def parse_rate_limit(headers: Mapping[str, str]) -> RateLimitInfo:
    windows: dict[str, Window] = {}
    # Xero: remaining calls per organisation per day and minute, and for the whole app per minute.
    for name, header in (("day", "X-DayLimit-Remaining"), ("minute", "X-MinLimit-Remaining"),
                         ("app_minute", "X-AppMinLimit-Remaining")):
        _add(windows, name, _int(headers.get(header)))
    # HubSpot: the rolling interval (Max/Remaining), per second, and per day (daily only for private apps).
    for name, prefix in (("interval", "X-HubSpot-RateLimit"), ("secondly", "X-HubSpot-RateLimit-Secondly"),
                         ("daily", "X-HubSpot-RateLimit-Daily")):
        limit_header = f"{prefix}-Max" if name == "interval" else prefix
        _add(windows, name, _int(headers.get(f"{prefix}-Remaining")), _int(headers.get(limit_header)))
    # Shopify: leaky bucket "used/size"; Salesforce: "api-usage=used/limit" over a rolling 24 hours.
    _add_usage(windows, "bucket", headers.get("X-Shopify-Shop-Api-Call-Limit"))
    sforce = headers.get("Sforce-Limit-Info") or ""
    for part in sforce.split(","):
        key, _, value = part.strip().partition("=")
        if key == "api-usage":
            _add_usage(windows, "api_usage", value)
    interval_ms = _int(headers.get("X-HubSpot-RateLimit-Interval-Milliseconds"))
    return RateLimitInfo(
        retry_after=parse_retry_after(headers.get("Retry-After")),
        problem=headers.get("X-Rate-Limit-Problem") or None,
        interval=interval_ms / 1000 if interval_ms else None,
        windows=windows,
    )


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    if value is None or not value.strip():
        return None
    try:
        seconds = float(value.strip())
        return max(seconds, 0.0) if seconds == seconds and seconds != float("inf") else None
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max((when - (now or datetime.now(timezone.utc))).total_seconds(), 0.0)


def _int(value: str | None) -> int | None:
    try:
        return int(str(value).strip()) if value is not None else None
    except ValueError:
        return None


def _add(windows: dict[str, Window], name: str, remaining: int | None, limit: int | None = None) -> None:
    if remaining is not None or limit is not None:
        windows[name] = Window(remaining, limit)


def _add_usage(windows: dict[str, Window], name: str, value: str | None) -> None:
    used, _, limit = (value or "").strip().partition("/")
    used_n, limit_n = _int(used), _int(limit)
    if used_n is not None and limit_n is not None:
        windows[name] = Window(max(limit_n - used_n, 0), limit_n)
