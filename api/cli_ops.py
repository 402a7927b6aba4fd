"""Operations commands the deployment runs: `zixly beat` (the one scheduler) and `zixly aws bootstrap`.

Registered onto the main `zixly` group by `api.cli`; kept apart so deployment concerns stay out of that module.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import click


def register(main: click.Group) -> None:
    main.add_command(beat)
    main.add_command(aws)


def _home() -> Path:
    return Path(os.environ.get("ZIXLY_HOME", ".zixly"))


@click.command("beat", context_settings={"ignore_unknown_options": True})
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where beat keeps its schedule state (default: $ZIXLY_HOME or .zixly). Must be writable.")
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def beat(state_dir, celery_args):
    """Run the Celery beat scheduler with the app's schedule. Run exactly one per deployment."""
    state_dir = state_dir or _home()
    state_dir.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "celery", "-A", "workers.app", "beat", "--loglevel", "INFO",
            "--schedule", str(state_dir / "celerybeat-schedule")]
    os.execv(sys.executable, argv + list(celery_args))


@click.group("aws")
def aws():
    """AWS resources: SQS queues and the S3 bucket (LocalStack/moto when AWS_ENDPOINT_URL is set)."""


@aws.command("bootstrap")
@click.option("--bucket", default=None, help="The artifacts bucket name (default: zixly-artifacts).")
def aws_bootstrap(bucket):
    """Create the outbound FIFO queues, the notification queue, their dead-letter queues and the artifacts
    bucket, or bring them up to date. Safe to run on every deploy."""
    from core.platform import aws as aws_resources
    from core.platform.config import Settings

    settings = Settings.from_env()
    target = settings.aws_endpoint_url or f"AWS {settings.aws_region}"
    report = aws_resources.bootstrap(settings, bucket=bucket or settings.artifacts_bucket)
    for name in report.created:
        click.echo(f"created  {name}")
    for name in report.existing:
        click.echo(f"updated  {name}")
    click.echo(f"{len(report.created)} created, {len(report.existing)} already existed ({target})")
