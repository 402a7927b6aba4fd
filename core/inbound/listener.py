"""What wakes the inbox processor: LISTEN on core.inbound.raw_inbox.CHANNEL on every database holding tenants.

A notification names a tenant (its slug, never trusted beyond a catalog look-up); that tenant's kept deliveries
are fanned out at once (core.inbound.processor), and the tenant is looked at again LINGER seconds after every
look that found work, until one finds none — so rows kept without a notification of their own (the hook path
sends at most one per tenant every NOTIFY_EVERY seconds) are taken within moments. On start, and after every
reconnection, every active tenant is drained once (what came in while nobody listened). Only active tenants
are fanned out: a suspended tenant's rows wait (a move copies them along). When no listener runs at all, the
beat fallback (`zixly.fleet.drain_inboxes`) drains every tenant every few seconds, so nothing waits forever.
"""
from __future__ import annotations

import logging
import threading
import time

from core.inbound import processor
from core.inbound.raw_inbox import CHANNEL, NOTIFY_EVERY
from core.platform.maintenance import active_tenants
from tenancy.context import tenant_context
from tenancy.db import get_router
from tenancy.provisioning import load_tenant_ref

log = logging.getLogger("zixly.inbox")
LINGER = max(0.1, 2 * NOTIFY_EVERY)
GATHER = 0.02  # a notified tenant is looked at no sooner than this after its last look: batches, not single rows
IDLE_WAIT = 1.0  # how long one wait for notifications lasts (so a stop is seen within it)
RETRY_SECONDS = 2.0  # after losing the database


def drain_tenant(tenant) -> int:
    """Fan out one tenant's kept deliveries; 0 (and a warning) when its database cannot be reached now."""
    try:
        with tenant_context(tenant):
            return processor.process_pending()
    except Exception as exc:
        log.warning("inbox of %s not drained: %s", tenant.slug, exc)
        return 0


def drain_all(shards: set[str] | None = None) -> dict[str, int]:
    """Drain every active tenant (on `shards`, when given); {slug: deliveries fanned out} of those that had any."""
    done = {}
    for tenant in active_tenants():
        if shards is None or tenant.shard in shards:
            count = drain_tenant(tenant)
            if count:
                done[tenant.slug] = count
    return done


class InboxListener:
    """One thread per database holding tenants: LISTEN, drain what is named, linger, reconnect when lost."""

    def __init__(self, *, linger: float = LINGER, gather: float = GATHER):
        self.linger, self.gather = linger, gather
        self.stopping = threading.Event()
        self.ready = threading.Event()  # every database LISTENed to and caught up once
        self._threads: list[threading.Thread] = []
        self._listening = 0
        self._lock = threading.Lock()

    def start(self) -> InboxListener:
        databases = get_router().databases()
        for url, shards in databases.items():
            thread = threading.Thread(target=self._run, args=(url, set(shards), len(databases)),
                                      name=f"inbox-{'+'.join(shards)}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def alive(self) -> bool:
        """Every database's thread still runs (each reconnects by itself; a dead one is a bug)."""
        return bool(self._threads) and all(thread.is_alive() for thread in self._threads)

    def stop(self, timeout: float = 10.0) -> None:
        self.stopping.set()
        for thread in self._threads:
            thread.join(timeout)

    def _run(self, url: str, shards: set[str], databases: int) -> None:
        while not self.stopping.is_set():
            try:
                with get_router().listen(url, CHANNEL) as connection:
                    drain_all(shards)  # after LISTEN: anything committed from here on also notifies
                    self._caught_up(databases)
                    self._serve(connection)
            except Exception as exc:
                log.warning("inbox listener for %s lost its database (%s); again in %.0f s", sorted(shards), exc,
                            RETRY_SECONDS)
                self.stopping.wait(RETRY_SECONDS)

    def _caught_up(self, databases: int) -> None:
        with self._lock:
            self._listening += 1
            if self._listening >= databases:
                self.ready.set()

    def _serve(self, connection) -> None:
        due: dict[str, float] = {}  # slug -> when to look at that tenant next
        looked: dict[str, float] = {}  # slug -> when it was last looked at
        while not self.stopping.is_set():
            now = time.monotonic()
            wait = min(IDLE_WAIT, max(0.0, min(due.values()) - now)) if due else IDLE_WAIT
            for notify in connection.notifies(timeout=wait, stop_after=1):
                slug = notify.payload
                due[slug] = min(due.get(slug, float("inf")), looked.get(slug, 0.0) + self.gather)
            now = time.monotonic()
            for slug in [slug for slug, at in due.items() if at <= now]:
                looked[slug] = now
                tenant = load_tenant_ref(get_router(), slug)
                if tenant is None or tenant.status != "active" or not drain_tenant(tenant):
                    del due[slug]
                    looked.pop(slug, None)
                else:
                    due[slug] = time.monotonic() + self.linger
