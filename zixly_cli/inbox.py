"""`zixly inbox`: the inbox processor (workers/inbox.py), which turns kept webhook deliveries into events and jobs.

Like `zixly outbound` it replaces itself with the process it starts, so SIGTERM (finish the batch in hand, then
exit) reaches it directly.
"""
from __future__ import annotations

import os
import sys

import click

from zixly_cli import common


@click.command("inbox")
@click.option("--linger", default=0.1, show_default=True, type=click.FloatRange(0.01, 10.0),
              help="Seconds after a batch before the tenant is looked at again (rows kept without a notification).")
@click.option("--heartbeat", default=None, type=click.Path(dir_okay=False),
              help="A file touched every second while the processor listens (for health checks).")
@click.option("--metrics-port", default=None, type=click.IntRange(1, 65535),
              help="Serve Prometheus metrics here (default: ZIXLY_WORKER_METRICS_PORT, unset: none).")
def inbox(linger, heartbeat, metrics_port):
    """Run the inbox processor: LISTENs on every database holding tenants and fans each kept webhook delivery out
    into its events, jobs and tasks, in batches. Run one or more (they share the work: SKIP LOCKED); beat's
    `drain-inboxes` is the fallback when none runs."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        common.multiprocess_metrics_dir("inbox")  # start from an empty samples folder, as the worker does
    argv = [sys.executable, "-m", "workers.inbox", "--linger", str(linger)]
    if heartbeat:
        argv += ["--heartbeat", heartbeat]
    if metrics_port:
        argv += ["--metrics-port", str(metrics_port)]
    os.execv(sys.executable, argv)
