"""Live fragments over Server-Sent Events, bounded so that streams cannot take every server thread.

gunicorn runs few threads per worker (api/gunicorn_conf.py), and an open stream holds one. So: a stream lasts
`console_stream_seconds` and then ends (the browser's EventSource reconnects by itself, after `retry`); at most
`console_max_streams` streams per process are open at once, and a request beyond that is answered at once
with only a `retry` hint, so the browser comes back a little later. Each tick re-renders the fragment inside
the tenant's context and sends it only when it changed; a fragment that says it is final closes the stream
(`event: done`, which the page's `sse-close` obeys). A stream also ends at the first tick after its session
ended or its tenant stopped being active.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable

from flask import Response, stream_with_context

from core.platform.runtime import settings
from tenancy.context import TenantRef, tenant_context

TICK = 1.0
RETRY_MS = 2000
BUSY_RETRY_MS = 5000
_slots: threading.BoundedSemaphore | None = None
_slots_lock = threading.Lock()


def _semaphore() -> threading.BoundedSemaphore:
    global _slots
    with _slots_lock:
        if _slots is None:
            _slots = threading.BoundedSemaphore(max(1, settings().console_max_streams))
        return _slots


def _message(event: str, html: str) -> str:
    data = "\n".join(f"data: {line}" for line in html.splitlines() or [""])
    return f"event: {event}\n{data}\n\n"


def stream(tenant: TenantRef, fragment: Callable[[], tuple[str, bool]], *, event: str,
           alive: Callable[[], bool] = lambda: True) -> Response:
    """`fragment()` -> (html, final). Sent at once, then whenever it changes, until final, time is up, or
    `alive()` turns false (signed out, tenant suspended: the browser's reconnect then meets the sign-in)."""
    slots = _semaphore()
    deadline = time.monotonic() + settings().console_stream_seconds

    def events():
        if not slots.acquire(blocking=False):  # taken only once the stream runs, so a stream never run holds none
            yield f"retry: {BUSY_RETRY_MS}\n\n"
            return
        try:
            yield f"retry: {RETRY_MS}\n\n"
            last = None
            while True:
                with tenant_context(tenant):
                    html, final = fragment()
                if html != last:
                    yield _message(event, html)
                    last = html
                if final:
                    yield _message("done", "")
                    return
                if time.monotonic() >= deadline or not alive():
                    return
                time.sleep(TICK)
        finally:
            slots.release()

    return Response(stream_with_context(events()), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
