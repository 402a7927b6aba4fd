"""`zixly outbound`: the delivery consumer that makes every write to a provider (workers/consumer.py).

Like `zixly worker` it replaces itself with the process it starts, so signals (SIGTERM: finish the deliveries in
hand, then exit) reach it directly.
"""
from __future__ import annotations

import os
import sys

import click

from core.platform.aws import OUTBOUND_PROVIDERS
from zixly_cli import common


@click.command("outbound")
@click.option("--threads", default=4, show_default=True, type=click.IntRange(1, 64),
              help="Deliveries made at once by this process.")
@click.option("--wait-seconds", default=20, show_default=True, type=click.IntRange(0, 20),
              help="Long-polling wait of each receive (20 s is SQS' longest, and the cheapest).")
@click.option("--retry-base", default=5.0, show_default=True, type=click.FloatRange(0.0, 900.0),
              help="Seconds a transiently failed message is hidden after its first attempt (doubling after).")
@click.option("--sweep-seconds", default=30.0, show_default=True, type=click.FloatRange(0.1, 3600.0),
              help="How often the dead-letter queues are drained into dead deliveries.")
@click.option("--follow-up-seconds", default=2, show_default=True, type=click.IntRange(1, 20),
              help="Wait of the short poll that follows a freed message group (its next write comes at once).")
@click.option("--providers", default=None, help="Comma-separated providers whose queues this process consumes "
              "(default: every provider).")
@click.option("--metrics-port", default=None, type=click.IntRange(1, 65535),
              help="Serve Prometheus metrics here (default: ZIXLY_WORKER_METRICS_PORT, unset: none).")
def outbound(threads, wait_seconds, retry_base, sweep_seconds, follow_up_seconds, providers, metrics_port):
    """Run the outbound delivery consumer: long-polls each provider's FIFO queue and makes the calls, in
    order per record and under each connection's quota. Run as many as needed; SIGTERM lets the
    deliveries in hand finish."""
    providers = providers or ",".join(OUTBOUND_PROVIDERS)
    unknown = set(filter(None, providers.split(","))) - set(OUTBOUND_PROVIDERS)
    if unknown:
        raise click.BadParameter(f"unknown provider(s): {', '.join(sorted(unknown))}", param_hint="--providers")
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        common.multiprocess_metrics_dir("outbound")  # start from an empty samples folder, as the worker does
    argv = [sys.executable, "-m", "workers.consumer", "--threads", str(threads), "--wait-seconds", str(wait_seconds),
            "--retry-base", str(retry_base), "--sweep-seconds", str(sweep_seconds),
            "--follow-up-seconds", str(follow_up_seconds), "--providers", providers]
    if metrics_port:
        argv += ["--metrics-port", str(metrics_port)]
    os.execv(sys.executable, argv)
