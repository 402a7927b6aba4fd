"""Tenant-chosen webhook destinations (event subscriptions): what URL is acceptable, and one POST that connects
to the very address the SSRF guard checked.

Invariant: every send resolves the host once, refuses it unless every address is public (connectors.hosts:
private, loopback, link-local, metadata, CGNAT, IPv4-mapped/6to4/NAT64 forms all refused), and then connects to
that checked address itself (TLS still verifies the certificate for the host name), so a DNS answer that changes
between the check and the connect never reaches the socket. Redirects are not followed; nothing is retried here.
Plain http and loopback addresses are accepted only under `allow_loopback_http` (tests and local development).
URLs are ASCII (an international host name in its punycode form).
"""
from __future__ import annotations

import ipaddress
import threading
from collections import OrderedDict
from dataclasses import dataclass
from urllib.parse import urlsplit

import certifi
import urllib3

from connectors.errors import Unresolvable, UnsafeAddress
from connectors.hosts import Resolver, is_public_address, system_resolver

MAX_URL_LENGTH = 2000


@dataclass(frozen=True)
class DestinationPolicy:
    allow_loopback_http: bool = False  # tests and `make run` only: http:// and 127.0.0.1 / ::1 receivers
    resolver: Resolver | None = None
    connect_timeout: float = 3.0
    read_timeout: float = 5.0
    max_response_bytes: int = 4096  # of the receiver's body, kept in the attempt log


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict
    body: str  # at most max_response_bytes, decoded leniently


def validate_url(value: object, policy: DestinationPolicy) -> str:
    """The URL, if its form is acceptable (https, a host, no credentials or fragment); UnsafeAddress otherwise.
    Where it resolves is checked at every send (`check_host`)."""
    if not isinstance(value, str) or not value.strip():
        raise UnsafeAddress({"url": "must be an https URL"})
    url = value.strip()
    if len(url) > MAX_URL_LENGTH or any(ch.isspace() or not 32 < ord(ch) < 127 or ch == "\\" for ch in url):
        raise UnsafeAddress({"url": "is too long or contains characters a URL cannot have"})
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UnsafeAddress({"url": "is not a valid URL"}) from None
    allowed = ("https", "http") if policy.allow_loopback_http else ("https",)
    if parts.scheme.lower() not in allowed:
        raise UnsafeAddress({"url": "must use https"})
    if not parts.hostname:
        raise UnsafeAddress({"url": "must name a host"})
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise UnsafeAddress({"url": "must not carry credentials"})
    if parts.fragment:
        raise UnsafeAddress({"url": "must not have a fragment"})
    if port == 0:
        raise UnsafeAddress({"url": "has an invalid port"})
    return url


def check_host(host: str, policy: DestinationPolicy) -> str:
    """Resolve `host` and answer the address to connect to, refusing unless every address is one we may call."""
    name = (host or "").strip().lower().rstrip(".")
    if not name:
        raise UnsafeAddress({"url": "must name a host"})
    try:
        addresses = [str(a) for a in (policy.resolver or system_resolver)(name)]
    except (OSError, UnicodeError, ValueError):
        addresses = []
    if not addresses:
        raise Unresolvable({"url": "the host does not resolve"})
    for address in addresses:
        if not (is_public_address(address) or (policy.allow_loopback_http and _is_loopback(address))):
            raise UnsafeAddress({"url": "resolves to a private, loopback, link-local or reserved address"})
    return addresses[0]


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


class _Pools:
    """Connection pools keyed by the checked address (and the host name TLS verifies): a kept-alive connection
    is only ever reused for the same checked address."""

    SIZE = 128

    def __init__(self):
        self._lock = threading.Lock()
        self._pools: OrderedDict[tuple, urllib3.HTTPConnectionPool] = OrderedDict()

    def get(self, scheme: str, address: str, port: int, host: str, policy: DestinationPolicy):
        key = (scheme, address, port, host, policy.connect_timeout, policy.read_timeout)
        with self._lock:
            pool = self._pools.get(key)
            if pool is not None:
                self._pools.move_to_end(key)
                return pool
            timeout = urllib3.Timeout(connect=policy.connect_timeout, read=policy.read_timeout)
            if scheme == "https":
                pool = urllib3.HTTPSConnectionPool(address, port, timeout=timeout, retries=False, maxsize=4,
                                                   cert_reqs="CERT_REQUIRED", ca_certs=certifi.where(),
                                                   server_hostname=host, assert_hostname=host)
            else:
                pool = urllib3.HTTPConnectionPool(address, port, timeout=timeout, retries=False, maxsize=4)
            self._pools[key] = pool
            while len(self._pools) > self.SIZE:
                self._pools.popitem(last=False)[1].close()
            return pool


_pools = _Pools()


def post(url: str, body: bytes, headers: dict, policy: DestinationPolicy) -> Answer:
    """POST `body` to `url` through the guard (UnsafeAddress / Unresolvable before anything is sent); transport
    failures raise urllib3's errors (timeouts, refused connections, TLS)."""
    parts = urlsplit(validate_url(url, policy))
    scheme, host = parts.scheme.lower(), parts.hostname
    port = parts.port or (443 if scheme == "https" else 80)
    address = check_host(host, policy)
    pool = _pools.get(scheme, address, port, host, policy)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host_header = host if parts.port is None else f"{host}:{parts.port}"
    if ":" in host and not host.startswith("["):
        host_header = f"[{host}]" if parts.port is None else f"[{host}]:{parts.port}"
    response = pool.urlopen("POST", target, body=body, headers={**headers, "Host": host_header}, redirect=False,
                            retries=False, preload_content=False, assert_same_host=False)
    try:
        data = response.read(policy.max_response_bytes, decode_content=False)
    finally:
        if response.length_remaining != 0:  # more than we keep (or unknown): this connection is not reused
            response.close()
        response.release_conn()
    return Answer(response.status, {k.lower(): v for k, v in response.headers.items()},
                  data.decode("utf-8", "replace"))
