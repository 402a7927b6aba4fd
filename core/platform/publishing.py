"""Publish after commit, the one mechanism for every transport (Celery tasks through the outbox table, provider
writes through SQS): what a transaction recorded is sent right after its commit by the request that wrote it.

When the transport cannot be reached, a breaker makes requests skip sending for BREAKER_SECONDS (an outage
costs each request nothing instead of a connection timeout) and the rows wait for the relay, which sends every
row older than RELAY_MIN_AGE. The relay leaves fresh rows to the request that wrote them, so one message is
not sent twice; a row is only ever marked sent after its transport took it, so nothing accepted is lost.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import timedelta

log = logging.getLogger("zixly.publishing")
BREAKER_SECONDS = 5.0
RELAY_MIN_AGE = timedelta(seconds=30)


class Interrupted(Exception):
    """The transport failed part way: `sent` were taken before `cause` stopped the rest."""

    def __init__(self, sent: list, cause: Exception):
        super().__init__(str(cause))
        self.sent, self.cause = sent, cause


class Publisher:
    """Sends rows through `send(rows) -> the rows the transport took` (raising, or raising Interrupted with
    the ones taken so far, when it cannot be reached); `on_sent(rows)` records the ones sent after a commit."""

    def __init__(self, name: str, send: Callable[[list], list], *, on_sent: Callable[[list], None] | None = None,
                 breaker_seconds: float = BREAKER_SECONDS):
        self.name, self._send, self._on_sent, self.breaker_seconds = name, send, on_sent, breaker_seconds
        self.down_until = 0.0

    def reset(self) -> None:
        """Close the breaker (tests, or an operator who knows the transport is back)."""
        self.down_until = 0.0

    def after_commit(self, rows: Sequence) -> list:
        """Send just-committed rows unless the breaker is open; the ones not sent wait for the relay."""
        if not rows or time.monotonic() < self.down_until:
            return []
        sent = self.send(list(rows))  # entries a transport refuses (not an outage) wait for the relay too
        if sent and self._on_sent is not None:
            self._on_sent(sent)
        return sent

    def send(self, rows: list) -> list:
        """Send rows now (the relay calls this inside its locked transaction); on an outage, open the breaker and
        answer what was taken before it."""
        try:
            return self._send(rows)
        except Interrupted as exc:
            self._trip(len(rows) - len(exc.sent), exc.cause)
            return exc.sent
        except Exception as exc:
            self._trip(len(rows), exc)
            return []

    def _trip(self, left: int, cause: Exception) -> None:
        self.down_until = time.monotonic() + self.breaker_seconds
        log.warning("%s publish failed; %d left for the relay: %s", self.name, left, cause)
