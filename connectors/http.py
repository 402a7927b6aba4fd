"""The one HTTP client every provider call goes through: SSRF guard, timeouts, bounded retries, typed errors."""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

import requests
from authlib.integrations.requests_client import OAuth2Session
from requests.adapters import HTTPAdapter

from connectors.env import ConnectorEnv
from connectors.errors import (
    ConnectorError,
    NotFound,
    Permanent,
    RateLimited,
    TokenRejected,
    Transient,
    Unresolvable,
    UnsafeAddress,
)
from connectors.hosts import ensure_public_host
from connectors.ratelimits import RateLimitInfo, parse_rate_limit

MAX_RETRIES = 2
RETRY_STATUSES = frozenset({502, 503, 504})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE", "PUT"})
_TRANSPORT_ERRORS = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)

# A connector may recognise a provider-specific failure first (e.g. Salesforce's 403 REQUEST_LIMIT_EXCEEDED).
Classifier = Callable[[requests.Response, RateLimitInfo], ConnectorError | None]


class GuardedAdapter(HTTPAdapter):
    """Checks every destination (redirects included) before connecting, sets timeouts, reports each attempt."""

    def __init__(self, provider: str, env: ConnectorEnv):
        super().__init__(max_retries=0)
        self.provider = provider
        self.env = env

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        check_destination(request.url, self.env)
        if timeout is None:
            timeout = (self.env.connect_timeout, self.env.timeout)
        started = time.monotonic()
        status = 0
        try:
            response = super().send(request, stream=stream, timeout=timeout, verify=verify, cert=cert,
                                    proxies=proxies)
            status = response.status_code
            return response
        finally:
            if self.env.on_response is not None:
                self.env.on_response(self.provider, request.method, status, time.monotonic() - started)


def check_destination(url: str, env: ConnectorEnv) -> None:
    parts = urlsplit(url)
    if env.simulated:
        default = 443 if parts.scheme == "https" else 80
        if (parts.hostname, parts.port or default) != env.simulator_netloc():
            raise UnsafeAddress({"host": "in simulator mode only the simulator may be called"})
        return
    if parts.scheme != "https":
        raise UnsafeAddress({"url": "provider calls must use https"})
    if parts.port not in (None, 443):
        raise UnsafeAddress({"url": "provider calls must use the default https port"})
    ensure_public_host(parts.hostname or "", env.resolver)


class _OAuthSession(OAuth2Session):
    """authlib's session, speaking through the guarded adapter and raising our transport errors."""

    provider = ""

    def request(self, method, url, withhold_token=False, auth=None, **kwargs):
        kwargs.setdefault("allow_redirects", False)
        try:
            return super().request(method, url, withhold_token=withhold_token, auth=auth, **kwargs)
        except Unresolvable:
            raise Transient(self.provider, "provider host did not resolve") from None
        except _TRANSPORT_ERRORS as exc:
            raise Transient(self.provider, type(exc).__name__) from None


class HttpClient:
    def __init__(self, provider: str, env: ConnectorEnv, classify: Classifier | None = None):
        self.provider = provider
        self.env = env
        self.classify = classify
        self.session = self._mount(requests.Session())
        self.last_rate_limit: RateLimitInfo | None = None

    def _mount(self, session: requests.Session) -> requests.Session:
        adapter = GuardedAdapter(self.provider, self.env)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        return session

    def url(self, real_url: str) -> str:
        return self.env.route(self.provider, real_url)

    def oauth_session(self, **kwargs) -> OAuth2Session:
        session = _OAuthSession(**kwargs)
        session.provider = self.provider
        return self._mount(session)

    def request(self, method: str, url: str, *, idempotent: bool | None = None, ok: Iterable[int] = (),
                **kwargs) -> requests.Response:
        """Send `url` (a real provider URL; routed here) and return the response, or raise a typed error."""
        method = method.upper()
        retryable = method in IDEMPOTENT_METHODS if idempotent is None else idempotent
        attempts = 1 + (MAX_RETRIES if retryable else 0)
        kwargs.setdefault("allow_redirects", False)
        target = self.url(url)
        for attempt in range(1, attempts + 1):
            last = attempt == attempts
            try:
                response = self.session.request(method, target, **kwargs)
            except Unresolvable:
                raise Transient(self.provider, "provider host did not resolve") from None
            except _TRANSPORT_ERRORS as exc:
                if last:
                    raise Transient(self.provider, type(exc).__name__) from None
                self._pause(attempt)
                continue
            if response.status_code in RETRY_STATUSES and not last:
                response.close()
                self._pause(attempt)
                continue
            self.raise_for(response, ok=ok)
            return response
        raise AssertionError("unreachable")

    def json(self, method: str, url: str, **kwargs):
        response = self.request(method, url, **kwargs)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise Transient(self.provider, "provider answered with a body that is not JSON",
                            status=response.status_code) from None

    def raise_for(self, response: requests.Response, ok: Iterable[int] = ()) -> None:
        info = parse_rate_limit(response.headers)
        self.last_rate_limit = info
        status = response.status_code
        if 200 <= status < 300 or status in ok:
            return
        error = self.classify(response, info) if self.classify else None
        raise error or classify_status(self.provider, response, info)

    def _pause(self, attempt: int) -> None:
        if self.env.retry_backoff > 0:
            time.sleep(self.env.retry_backoff * (2 ** (attempt - 1)))


def classify_status(provider: str, response: requests.Response, info: RateLimitInfo) -> ConnectorError:
    status = response.status_code
    detail = error_detail(response)
    if status == 429:
        return RateLimited(provider, info.wait_seconds(), detail, info)
    if status == 401:
        return TokenRejected(provider, detail or "access token rejected")
    if status >= 500:
        return Transient(provider, detail or f"HTTP {status}", status=status)
    if status == 404:
        return NotFound(provider, detail)
    if 300 <= status < 400:
        return Permanent(provider, status, "unexpected redirect")
    return Permanent(provider, status, detail)


def error_detail(response: requests.Response, limit: int = 200) -> str:
    """A short message from the provider's error body, whatever its shape."""
    try:
        body = response.json()
    except ValueError:
        return ""
    return _message(body)[:limit]


def _message(body) -> str:
    if isinstance(body, list):
        return "; ".join(_message(item) for item in body[:3] if item)
    if isinstance(body, str):
        return body
    if not isinstance(body, dict):
        return ""
    # Xero's "Message" is generic ("A validation exception occurred"); its Elements say what was wrong.
    for key in ("Elements", "ValidationErrors", "error_description", "message", "Message", "Detail", "detail",
                "error", "errors"):
        value = body.get(key)
        if value:
            return _message(value)
    return ""
