"""The inbox processor's two ways to run: `zixly inbox` (`python -m workers.inbox`), a process that LISTENs and fans
out kept deliveries the moment they come in (core.inbound.listener), and the beat task `zixly.fleet.drain_inboxes`,
the fallback that drains every active tenant every few seconds, so nothing waits forever when no listener runs.

Why a process of its own, not a thread of the Celery worker: the worker's main process is already its busiest
(kombu's message handling), its prefork children inherit whatever connections it holds, and a separate process
scales on its own (several run side by side: claims use SKIP LOCKED).
"""
from __future__ import annotations

import argparse
import logging
import signal
import threading
from pathlib import Path

from prometheus_client import start_http_server

from core import bootstrap
from core.inbound import listener
from core.platform import logs
from core.platform.config import Settings
from core.platform.metrics import registry_for_scrape
from core.platform.queue import celery_app

log = logging.getLogger("zixly.inbox")


@celery_app.task(name="zixly.fleet.drain_inboxes", ignore_result=True)
def drain_inboxes() -> dict:
    """Fan out every active tenant's kept deliveries, directly from this task; {slug: count} of those that had any."""
    return listener.drain_all()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="zixly inbox")
    parser.add_argument("--linger", type=float, default=listener.LINGER)
    parser.add_argument("--metrics-port", type=int, default=None,
                        help="serve Prometheus metrics here (default: ZIXLY_WORKER_METRICS_PORT; unset: none)")
    parser.add_argument("--heartbeat", type=Path, default=None,
                        help="a file touched every second while every listener thread runs (health checks)")
    args = parser.parse_args(argv)
    settings = bootstrap.init(Settings.from_env())
    logs.configure(settings.log_level, settings.log_format)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    port = args.metrics_port or settings.worker_metrics_port
    if port:  # zixly_inbox_processed_total, zixly_inbox_lag_seconds, zixly_inbox_set_aside_total …
        start_http_server(port, registry=registry_for_scrape())
    running = listener.InboxListener(linger=args.linger).start()
    log.info("inbox processor listening")
    while not stop.wait(1):
        if args.heartbeat is not None and running.alive():
            args.heartbeat.touch()
    running.stop()


if __name__ == "__main__":
    main()
