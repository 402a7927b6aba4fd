"""SSRF guard: tenant-supplied hosts must match the provider's own domains and resolve to public addresses only."""
from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

from connectors.errors import Unresolvable, UnsafeAddress

Resolver = Callable[[str], Iterable[str]]

SHOP_DOMAIN = re.compile(r"^[a-z0-9][a-z0-9-]*\.myshopify\.com\Z")
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
# Salesforce serves an org's API from its My Domain (*.my.salesforce.com, including the sandbox., develop.
# and scratch. partitions), legacy instance hosts (naNN.salesforce.com), and *.force.com / *.cloudforce.com.
SALESFORCE_HOST = re.compile(
    rf"^(?:{_LABEL}\.)+(?:my\.salesforce\.com|salesforce\.com|force\.com|cloudforce\.com)\Z"
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def validate_shop_domain(value: object) -> str:
    if not isinstance(value, str):
        raise UnsafeAddress({"shop": "must be a string like example.myshopify.com"})
    shop = value.strip().lower()
    if len(shop) > 253 or not SHOP_DOMAIN.fullmatch(shop):
        raise UnsafeAddress({"shop": "must be a shop domain like example.myshopify.com (no scheme, port or path)"})
    return shop


def validate_instance_url(value: object, field: str = "instance_url") -> str:
    """Normalise to `https://host` and accept only Salesforce's own domains."""
    if not isinstance(value, str) or not value.strip():
        raise UnsafeAddress({field: "must be an https URL like https://example.my.salesforce.com"})
    raw = value.strip()
    if any(ch.isspace() or ord(ch) < 32 or ch == "\\" for ch in raw):
        raise UnsafeAddress({field: "contains characters a URL cannot have"})
    parts = urlsplit(raw)
    if parts.scheme.lower() != "https":
        raise UnsafeAddress({field: "must use https"})
    host = parts.netloc.lower()
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise UnsafeAddress({field: "must be the instance's base URL, without a path"})
    if len(host) > 253 or not SALESFORCE_HOST.fullmatch(host):
        # netloc with "@", ":" (ports, IPv6) or an unknown domain all land here.
        raise UnsafeAddress({field: "must be a Salesforce domain (*.my.salesforce.com, *.force.com, ...)"})
    return f"https://{host}"


def system_resolver(host: str) -> list[str]:
    infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    return [info[4][0] for info in infos]


def is_literal_ip(host: str) -> bool:
    candidate = host.strip("[]")
    try:
        ipaddress.ip_address(candidate)
        return True
    except ValueError:
        pass
    try:
        socket.inet_aton(candidate)  # also catches the short and hex forms: "127.1", "0x7f.1", "2130706433"
        return True
    except OSError:
        return False


def ensure_public_host(host: str, resolver: Resolver | None = None) -> list[str]:
    """Resolve `host` and refuse it unless every address is publicly routable. Returns the addresses."""
    name = (host or "").strip().lower().rstrip(".")
    if not name:
        raise UnsafeAddress({"host": "is empty"})
    if is_literal_ip(name):
        raise UnsafeAddress({"host": "must be a name, not an IP address"})
    try:
        addresses = [str(a) for a in (resolver or system_resolver)(name)]
    except (OSError, UnicodeError, ValueError):
        addresses = []
    if not addresses:
        raise Unresolvable({"host": "does not resolve"})
    for address in addresses:
        if not is_public_address(address):
            raise UnsafeAddress({"host": "resolves to a private or reserved address"})
    return addresses


def is_public_address(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    for embedded in _embedded_ipv4(ip):
        if not is_public_address(str(embedded)):
            return False
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified or ip.is_loopback
                                 or ip.is_link_local or ip.is_private)


def _embedded_ipv4(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """IPv6 forms that carry an IPv4 address the packet may really go to (mapped, 6to4, Teredo, NAT64)."""
    if ip.version != 6:
        return []
    found = [a for a in (ip.ipv4_mapped, ip.sixtofour) if a is not None]
    if ip.teredo:
        found.extend(ip.teredo)
    if ip in _NAT64:
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return found
