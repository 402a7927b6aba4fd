"""`zixly worker` (a Celery worker, optionally with beat) and `zixly beat` (the one scheduler per deployment).

Each replaces itself with the Celery process it starts, so signals (SIGTERM: a warm shutdown) reach it directly.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from zixly_cli import common


@click.command("worker", context_settings={"ignore_unknown_options": True})
@click.option("--concurrency", "-c", default=None, type=int,
              help="Worker processes (default: ZIXLY_WORKER_CONCURRENCY, or two per CPU core).")
@click.option("--beat/--no-beat", default=False, help="Also run the beat scheduler (one per deployment).")
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def worker(concurrency, beat, celery_args):
    """Run a Celery worker. SIGTERM is a warm shutdown: running jobs finish, then it exits."""
    argv = [sys.executable, "-m", "celery", "-A", "workers.app", "worker", "--loglevel", "INFO"]
    if concurrency:
        argv += ["--concurrency", str(concurrency)]
    if beat:
        argv += ["-B", "--schedule", str(common.home() / "celerybeat-schedule")]
    common.multiprocess_metrics_dir("worker")
    os.execv(sys.executable, argv + list(celery_args))


@click.command("beat", context_settings={"ignore_unknown_options": True})
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where beat keeps its schedule state (default: $ZIXLY_HOME or .zixly). Must be writable.")
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def beat(state_dir, celery_args):
    """Run the Celery beat scheduler with the app's schedule. Run exactly one per deployment."""
    state_dir = state_dir or common.home()
    state_dir.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "celery", "-A", "workers.app", "beat", "--loglevel", "INFO",
            "--schedule", str(state_dir / "celerybeat-schedule")]
    os.execv(sys.executable, argv + list(celery_args))
