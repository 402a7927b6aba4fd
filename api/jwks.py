"""An identity provider's JWKS, cached so that verifying a token never costs a fetch per request.

Invariants: the first use fetches, however recently the machine booted (the clock is injected, never assumed
to start at 0); a good key set is fetched again once per `TTL`; after a failed fetch nothing is fetched for
`BACKOFF` seconds and the last good key set keeps serving until it is `MAX_STALE` old; a token naming a `kid`
the set lacks forces at most one extra fetch per `KID_REFRESH` seconds. With no usable key set `keys()`
raises `KeysUnavailable` (the API answers 503 with Retry-After): "cannot verify now" is not "invalid token".
"""
from __future__ import annotations

import json
import logging
import math
import threading
import time
import urllib.request
from collections.abc import Callable

from joserfc.errors import JoseError
from joserfc.jwk import KeySet

TTL = 300
BACKOFF = 5
KID_REFRESH = 30
MAX_STALE = 3600
TIMEOUT = 5

log = logging.getLogger("zixly.api")


class KeysUnavailable(Exception):
    """No key set can be had right now; try again in `retry_after` seconds."""

    def __init__(self, detail: str, retry_after: int):
        super().__init__(detail)
        self.retry_after = retry_after


class JwksCache:
    def __init__(self, url: str, *, clock: Callable[[], float] = time.monotonic, timeout: float = TIMEOUT):
        self.url, self._clock, self._timeout = url, clock, timeout
        self._keys: KeySet | None = None
        self._fetched_at: float | None = None  # last good fetch; None: never fetched
        self._failed_at: float | None = None  # last failed fetch since the last good one
        self._kid_refresh_at: float | None = None
        self._lock = threading.Lock()

    def keys(self) -> KeySet:
        now = self._clock()
        if self._due(now):
            # a thread that still has usable keys does not wait behind another thread's fetch
            if self._lock.acquire(blocking=self._usable(now) is None):
                try:
                    if self._due(self._clock()):
                        self._fetch()
                finally:
                    self._lock.release()
        now = self._clock()
        keys = self._usable(now)
        if keys is None:
            wait = BACKOFF - (now - self._failed_at) if self._failed_at is not None else BACKOFF
            raise KeysUnavailable("the identity provider's keys (JWKS) cannot be fetched right now",
                                  retry_after=max(1, math.ceil(wait)))
        return keys

    def refresh_for_unknown_kid(self) -> bool:
        """Fetch again because a token names a key the set lacks (the provider rotated); True if it was fetched."""
        with self._lock:
            now = self._clock()
            if self._kid_refresh_at is not None and now - self._kid_refresh_at < KID_REFRESH:
                return False
            if self._backing_off(now):
                return False
            self._kid_refresh_at = now
            return self._fetch()

    def _due(self, now: float) -> bool:
        stale = self._fetched_at is None or now - self._fetched_at >= TTL
        return stale and not self._backing_off(now)

    def _backing_off(self, now: float) -> bool:
        return self._failed_at is not None and now - self._failed_at < BACKOFF

    def _usable(self, now: float) -> KeySet | None:
        if self._keys is None or self._fetched_at is None or now - self._fetched_at >= MAX_STALE:
            return None
        return self._keys

    def _fetch(self) -> bool:
        try:
            with urllib.request.urlopen(self.url, timeout=self._timeout) as resp:  # noqa: S310 (configured URL)
                keys = KeySet.import_key_set(json.load(resp))
        except (OSError, ValueError, TypeError, KeyError, JoseError) as exc:  # URLError and timeouts are OSError
            self._failed_at = self._clock()
            log.warning("JWKS fetch failed", extra={"jwks_url": self.url, "error": repr(exc)})
            return False
        self._keys, self._fetched_at, self._failed_at = keys, self._clock(), None
        return True
