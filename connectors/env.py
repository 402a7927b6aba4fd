"""Where provider calls go: the real providers, or (an explicit development setting) the local simulators.

Simulator layout, the one place it is defined on this side: a real URL `https://HOST/PATH?QUERY` of provider P
becomes `{simulator_url}/P/HOST/PATH?QUERY`. Connectors always build real URLs; only `route` rewrites them.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from connectors.hosts import Resolver

# on_response(provider, method, status, seconds); status 0 means no response arrived (timeout, refused).
ResponseHook = Callable[[str, str, int, float], None]


@dataclass(frozen=True)
class ConnectorEnv:
    simulator_url: str | None = None
    timeout: float = 20.0
    connect_timeout: float = 5.0
    on_response: ResponseHook | None = None
    resolver: Resolver | None = None
    retry_backoff: float = 0.25

    def __post_init__(self):
        if self.simulator_url is not None:
            parts = urlsplit(self.simulator_url)
            if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
                raise ValueError("simulator_url must look like http://127.0.0.1:5055")
            object.__setattr__(self, "simulator_url", self.simulator_url.rstrip("/"))

    @property
    def simulated(self) -> bool:
        return self.simulator_url is not None

    def route(self, provider: str, url: str) -> str:
        if self.simulator_url is None:
            return url
        parts = urlsplit(url)
        query = f"?{parts.query}" if parts.query else ""
        return f"{self.simulator_url}/{provider}/{parts.hostname}{parts.path or '/'}{query}"

    def simulator_netloc(self) -> tuple[str, int] | None:
        if self.simulator_url is None:
            return None
        parts = urlsplit(self.simulator_url)
        return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
