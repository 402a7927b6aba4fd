"""`zixly aws bootstrap`: create or update the SQS queues and the S3 bucket (run on every deploy)."""
from __future__ import annotations

import click

from core.platform import aws as aws_resources
from core.platform.config import Settings


@click.group("aws")
def aws():
    """AWS resources: SQS queues and the S3 bucket (LocalStack/moto when AWS_ENDPOINT_URL is set)."""


@aws.command("bootstrap")
@click.option("--bucket", default=None, help="The artifacts bucket name (default: zixly-artifacts).")
def aws_bootstrap(bucket):
    """Create the outbound FIFO queues, the notification queue, their dead-letter queues and the artifacts
    bucket, or bring them up to date. Safe to run on every deploy."""
    settings = Settings.from_env()
    target = settings.aws_endpoint_url or f"AWS {settings.aws_region}"
    report = aws_resources.bootstrap(settings, bucket=bucket or settings.artifacts_bucket)
    for name in report.created:
        click.echo(f"created  {name}")
    for name in report.existing:
        click.echo(f"updated  {name}")
    click.echo(f"{len(report.created)} created, {len(report.existing)} already existed ({target})")
