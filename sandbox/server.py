"""One threaded HTTP server hosting every provider simulator, with knobs and a request log for tests."""
from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

import requests
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from sandbox import control, signing
from sandbox.asana import Asana
from sandbox.authority import App, Authority
from sandbox.hubspot import HubSpot
from sandbox.provider import Provider, json_response
from sandbox.salesforce import Salesforce
from sandbox.shopify import Shopify
from sandbox.xero import Xero

PROVIDERS: tuple[type[Provider], ...] = (Xero, HubSpot, Shopify, Asana, Salesforce)
CONTROL = "_sandbox"  # the simulator's own endpoints (sandbox.control), beside the providers'


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs) -> None:
        """Requests are in `Simulator.calls()`; the access log would only be noise."""


@dataclass(frozen=True)
class Call:
    provider: str
    method: str
    host: str
    path: str
    query: dict
    headers: dict
    body: bytes
    status: int
    at: float = 0.0  # when the request arrived (time.time())


@dataclass
class _Fault:
    status: int          # 0: answer normally, only late
    count: int
    retry_after: float = 0.0
    delay: float = 0.0


@dataclass
class _Faults:
    pending: dict[str, list[_Fault]] = field(default_factory=dict)

    def take(self, provider: str) -> _Fault | None:
        queue = self.pending.get(provider) or []
        while queue and queue[0].count <= 0:
            queue.pop(0)
        if not queue:
            return None
        queue[0].count -= 1
        return queue[0]


class Simulator:
    """`Simulator(port=0).start()`; `.url` is what ConnectorEnv.simulator_url takes; `.stop()` when done."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, poll_interval: float = 0.1):
        self.authority = Authority()
        self.providers: dict[str, Provider] = {cls.name: cls(self.authority) for cls in PROVIDERS}
        self._host, self._port, self._poll = host, port, poll_interval
        self._server = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._log: list[Call] = []
        self._faults = _Faults()

    # --- lifecycle ------------------------------------------------------------------------------------------
    def start(self) -> Simulator:
        self._server = make_server(self._host, self._port, self.wsgi, threaded=True, request_handler=_QuietHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(self._poll,), name="sandbox",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the simulator is not running")
        return f"http://{self._host}:{self._server.server_port}"

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- knobs ----------------------------------------------------------------------------------------------
    def provider(self, name: str) -> Provider:
        return self.providers[name]

    def register_app(self, provider: str, client_id: str, client_secret: str,
                     redirect_uris: tuple[str, ...] | list[str] = (), webhook_key: str | None = None) -> None:
        """An OAuth app at the provider; `webhook_key` is Xero's webhooks key for it (the others sign their
        deliveries with the client secret)."""
        self.provider(provider)
        self.authority.register(provider, App(client_id, client_secret, tuple(redirect_uris), webhook_key))

    def configure(self, provider: str, *, access_ttl: float | None = None, rotate_refresh: bool | None = None,
                  refresh_grace: float | None = None) -> None:
        target = self.provider(provider)
        for name, value in (("access_ttl", access_ttl), ("rotate_refresh", rotate_refresh),
                            ("refresh_grace", refresh_grace)):
            if value is not None:
                setattr(target, name, value)

    def expire_tokens(self, provider: str) -> None:
        self.authority.expire_access(provider)

    def revoke_grant(self, provider: str, refresh_token: str | None = None) -> int:
        """Revoke one grant (by its refresh token) or all of the provider's: refreshes get invalid_grant."""
        return self.authority.revoke(provider, refresh_token)

    def deny_consent(self, provider: str, error: str = "access_denied",
                     description: str = "The user denied access", count: int = 1) -> None:
        """The next `count` consents at the provider are declined: its authorize endpoint redirects back with
        `error`, `error_description` and `state` (RFC 6749 §4.1.2.1), as when the user presses Cancel."""
        self.provider(provider)
        self.authority.refuse_consents(provider, error, description, count)

    def refuse_code_exchange(self, provider: str, count: int = 1) -> None:
        """The next `count` authorization-code exchanges at the token endpoint get `invalid_grant`."""
        self.provider(provider)
        with self.authority.lock:
            self.authority.code_refusals[provider] += count

    def force_rate_limit(self, provider: str, retry_after: float = 1.0, count: int = 1) -> None:
        """The next `count` API calls get the provider's own rate-limit answer, waiting `retry_after` s."""
        self._queue(provider, _Fault(429, count, retry_after))

    def force_error(self, provider: str, status: int = 503, count: int = 1) -> None:
        self._queue(provider, _Fault(status, count))

    def force_delay(self, provider: str, seconds: float, count: int = 1) -> None:
        """The next `count` API calls answer normally but only after `seconds` (to exercise timeouts)."""
        self._queue(provider, _Fault(0, count, delay=seconds))

    def _queue(self, provider: str, fault: _Fault) -> None:
        self.provider(provider)
        with self._lock:
            self._faults.pending.setdefault(provider, []).append(fault)

    # --- inspection -----------------------------------------------------------------------------------------
    def calls(self, provider: str | None = None, path_prefix: str | None = None) -> list[Call]:
        with self._lock:
            log = list(self._log)
        return [c for c in log if (provider is None or c.provider == provider)
                and (path_prefix is None or c.path.startswith(path_prefix)
                     or f"{c.host}{c.path}".startswith(path_prefix))]

    def token_requests(self, provider: str, grant_type: str) -> int:
        with self.authority.lock:
            return self.authority.token_requests[(provider, grant_type)]

    def clear_log(self) -> None:
        with self._lock:
            self._log.clear()

    # --- webhooks -------------------------------------------------------------------------------------------
    def send_webhook(self, provider: str, url: str, payload: Mapping | list, secret: str,
                     **options) -> requests.Response:
        """POST `payload` to `url` signed with the provider's real scheme (see sandbox.signing)."""
        body, headers = signing.sign(provider, url, payload, secret, **options)
        return requests.post(url, data=body, headers=headers, timeout=10)

    # --- WSGI -----------------------------------------------------------------------------------------------
    def wsgi(self, environ, start_response):
        arrived = time.time()
        request = Request(environ)
        # Route on the path as sent, so an escaped "/" inside a segment (%2F) stays inside it.
        raw_path = urlsplit(environ.get("RAW_URI") or request.path).path
        provider_name, _, rest = raw_path.lstrip("/").partition("/")
        host, _, path = rest.partition("/")
        path = "/" + path
        body = request.get_data(cache=True)
        response = self._dispatch(request, provider_name, host, path)
        with self._lock:
            self._log.append(Call(provider_name, request.method, host, path, request.args.to_dict(),
                                  dict(request.headers), body, response.status_code, arrived))
        return response(environ, start_response)

    def _dispatch(self, request: Request, provider_name: str, host: str, path: str) -> Response:
        if provider_name == CONTROL:
            return control.handle(request, f"/{host}{path}".rstrip("/"), self.providers, self.authority)
        provider = self.providers.get(provider_name)
        found = provider.match(request.method, f"{host}{path}") if provider else None
        if provider is None or found is None:
            return json_response({"error": "no such endpoint in the simulator"}, 404)
        route, params = found
        params = {name: unquote(value) if isinstance(value, str) else value for name, value in params.items()}
        grant = None
        if route.api:
            with self._lock:
                fault = self._faults.take(provider_name)
            if fault is not None and fault.delay:
                time.sleep(fault.delay)
            elif fault is not None and fault.status == 429:
                return provider.rate_limited(fault.retry_after)
            elif fault is not None:
                return json_response({"error": "simulated failure"}, fault.status)
        if route.auth:
            grant = provider.authenticate(request)
            if grant is None:
                return provider.unauthorized()
            params["grant"] = grant
        response = getattr(provider, route.handler)(request, host=host, **params)
        if route.api:
            response.headers.update(provider.quota_headers(grant))
        return response
