"""Shared webhook types and helpers: verify a provider's signature, then split the delivery into events."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any


class VerificationFailed(Exception):
    """Signature missing/invalid/stale. str(exc) is a short safe reason (never includes secrets or body)."""


class MalformedPayload(ValueError):
    """Signature was valid but the body cannot be parsed into events."""


@dataclass(frozen=True)
class InboundRequest:
    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        for key, value in self.headers.items():
            if key.lower() == wanted:
                return value
        return None


@dataclass(frozen=True)
class WebhookEvent:
    event_id: str
    event_type: str
    account_id: str | None
    resource_id: str | None
    occurred_at: str | None
    payload: dict


@dataclass(frozen=True)
class Handshake:
    status: int
    headers: dict[str, str]
    body: bytes = b""


class WebhookScheme:
    provider: str
    dedup_horizon: timedelta = timedelta(hours=24)
    # The provider signs every tenant's deliveries with Zixly's one app secret, to one URL: they are routed by the
    # account named in the payload (POST /v1/hooks/apps/{provider}), not by a per-connection endpoint.
    app_level: bool = False

    def handshake(self, request: InboundRequest) -> Handshake | None:
        return None

    def verify(self, request: InboundRequest, secrets: Sequence[str], *, now: float) -> None:
        try:
            keys = usable_secrets(secrets)
            self._verify(request, keys, now)
        except VerificationFailed:
            raise
        except (ValueError, TypeError, AttributeError, OverflowError, RecursionError):
            # Fail closed: hostile input that trips a parser is a rejection, never a 500 (and no traceback).
            raise VerificationFailed("malformed signature input") from None

    def _verify(self, request: InboundRequest, secrets: Sequence[bytes], now: float) -> None:
        raise NotImplementedError

    def events(self, request: InboundRequest) -> list[WebhookEvent]:
        raise NotImplementedError


class BodyHmacScheme(WebhookScheme):
    """HMAC-SHA256 of the raw body under the shared secret, sent base64 (or hex) in one header."""

    signature_header: str
    hex_digest: bool = False

    def _verify(self, request: InboundRequest, secrets: Sequence[bytes], now: float) -> None:
        provided = require_header(request, self.signature_header)
        digests = [hmac_sha256(key, request.body) for key in secrets]
        if self.hex_digest:
            ok = signature_matches(provided.lower(), [d.hex() for d in digests])
        else:
            ok = signature_matches(provided, [b64(d) for d in digests])
        if not ok:
            raise VerificationFailed("signature mismatch")


def usable_secrets(secrets: Sequence[str]) -> list[bytes]:
    if isinstance(secrets, str):
        secrets = [secrets]
    # An empty key would let anyone forge a valid HMAC, so it never counts as configured.
    keys = [s.encode("utf-8", "surrogatepass") for s in secrets or () if isinstance(s, str) and s]
    if not keys:
        raise VerificationFailed("no active secret")
    return keys


def require_header(request: InboundRequest, name: str) -> str:
    value = request.header(name)
    if value is None or not str(value).strip():
        raise VerificationFailed(f"missing {name} header")
    return str(value).strip()


def hmac_sha256(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


def signature_matches(provided: str, candidates: Iterable[str]) -> bool:
    """Constant-time compare against every candidate (all are checked, so timing reveals no secret index)."""
    given = provided.encode("utf-8", "replace")
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(given, candidate.encode("ascii"))
    return matched


def parse_timestamp(raw: str) -> int:
    if not (raw.isascii() and raw.isdigit()):
        raise VerificationFailed("invalid timestamp")
    return int(raw)


def check_fresh(sent_at: float, now: float, tolerance: timedelta) -> None:
    skew = now - sent_at
    if skew > tolerance.total_seconds():
        raise VerificationFailed("stale timestamp")
    if -skew > tolerance.total_seconds():
        raise VerificationFailed("timestamp in the future")


def parse_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, TypeError, RecursionError):
        raise MalformedPayload("body is not valid JSON") from None


def optional_str(value: object) -> str | None:
    return None if value is None else str(value)


def stable_id(*parts: object) -> str:
    """Deterministic id for providers that send none; the same event always hashes to the same id."""
    joined = "|".join("" if p is None else str(p) for p in parts)
    return hashlib.sha256(joined.encode("utf-8", "surrogatepass")).hexdigest()
