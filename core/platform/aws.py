"""The AWS resources Zixly uses (SQS queues, the S3 artifacts bucket): their names, defined once, and an
idempotent `bootstrap` that creates them against LocalStack/moto (`AWS_ENDPOINT_URL`) or real AWS.

Terraform (terraform/modules/queue, terraform/modules/storage) declares the same resources for AWS; a test
keeps the two in step.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import boto3
from botocore.exceptions import ClientError

from connectors.registry import PROVIDERS
from core.platform.config import Settings

# The providers Zixly writes to; each gets its own ordered outbound queue so one slow API never blocks another.
OUTBOUND_PROVIDERS = PROVIDERS  # one FIFO queue (and dead-letter queue) per provider

# The longest one outbound HTTP call may take (connect + read); the consumer's HTTP client uses this timeout.
OUTBOUND_CALL_TIMEOUT_SECONDS = 30
# Handling one message may make this many calls (a token refresh, the write, one retry after a 429).
OUTBOUND_CALLS_PER_MESSAGE = 3
# A message must stay invisible for longer than the worst handling, or a second consumer would run it too.
OUTBOUND_VISIBILITY_TIMEOUT_SECONDS = 2 * OUTBOUND_CALL_TIMEOUT_SECONDS * OUTBOUND_CALLS_PER_MESSAGE
# After this many receives without a delete, SQS moves the message to the provider's dead-letter queue.
MAX_RECEIVE_COUNT = 5
# Dead letters are kept the longest SQS allows (14 days) so an operator can inspect and replay them.
DLQ_RETENTION_SECONDS = 14 * 24 * 3600

# Consumers long-poll: fewer empty receives, lower cost, no added latency.
LONG_POLL_SECONDS = 20

NOTIFICATION_QUEUE = "zixly-notification-delivery"
NOTIFICATION_DLQ = "zixly-notification-delivery-dlq"
NOTIFICATION_VISIBILITY_TIMEOUT_SECONDS = 60

ARTIFACTS_BUCKET = "zixly-artifacts"
ARTIFACTS_GLACIER_AFTER_DAYS = 90
ARTIFACTS_EXPIRE_AFTER_DAYS = 7 * 365


def outbound_queue_name(provider: str, prefix: str = "zixly") -> str:
    return f"{prefix}-outbound-{provider}.fifo"


def outbound_dlq_name(provider: str, prefix: str = "zixly") -> str:
    return f"{prefix}-outbound-{provider}-dlq.fifo"


def queue_names() -> list[str]:
    """Every queue `bootstrap` creates, dead-letter queues included."""
    names = [n for p in OUTBOUND_PROVIDERS for n in (outbound_queue_name(p), outbound_dlq_name(p))]
    return names + [NOTIFICATION_QUEUE, NOTIFICATION_DLQ]


def client(service: str, settings: Settings):
    """A boto3 client for `service`: the endpoint in `AWS_ENDPOINT_URL` when set, real AWS otherwise."""
    return boto3.client(service, region_name=settings.aws_region, endpoint_url=settings.aws_endpoint_url)


@dataclass
class BootstrapReport:
    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)


def bootstrap(settings: Settings, *, bucket: str = ARTIFACTS_BUCKET) -> BootstrapReport:
    """Create (or bring up to date) every queue and the artifacts bucket; safe to run any number of times."""
    report = BootstrapReport()
    sqs = client("sqs", settings)
    ensure_outbound_queues(sqs, report, prefix=settings.outbound_queue_prefix)
    dlq_url = _ensure_queue(sqs, NOTIFICATION_DLQ, {"MessageRetentionPeriod": str(DLQ_RETENTION_SECONDS),
                                                    "SqsManagedSseEnabled": "true"}, report)
    _ensure_queue(sqs, NOTIFICATION_QUEUE, {
        "VisibilityTimeout": str(NOTIFICATION_VISIBILITY_TIMEOUT_SECONDS),
        "ReceiveMessageWaitTimeSeconds": str(LONG_POLL_SECONDS),
        "SqsManagedSseEnabled": "true",
        "RedrivePolicy": _redrive_policy(sqs, dlq_url),
    }, report)
    _ensure_bucket(client("s3", settings), bucket, settings.aws_region, report)
    return report


def ensure_outbound_queues(sqs, report: BootstrapReport | None = None, *, prefix: str = "zixly",
                           providers=OUTBOUND_PROVIDERS, visibility: int = OUTBOUND_VISIBILITY_TIMEOUT_SECONDS,
                           max_receive: int = MAX_RECEIVE_COUNT) -> BootstrapReport:
    """Each provider's FIFO queue and its FIFO dead-letter queue (tests pass a prefix and short timings)."""
    report = report if report is not None else BootstrapReport()
    for provider in providers:
        dlq_url = _ensure_queue(sqs, outbound_dlq_name(provider, prefix), _fifo_attributes(dlq=True), report)
        attrs = _fifo_attributes(dlq=False, visibility=visibility)
        attrs["RedrivePolicy"] = _redrive_policy(sqs, dlq_url, max_receive)
        _ensure_queue(sqs, outbound_queue_name(provider, prefix), attrs, report)
    return report


def _fifo_attributes(*, dlq: bool, visibility: int = OUTBOUND_VISIBILITY_TIMEOUT_SECONDS) -> dict[str, str]:
    attrs = {
        "FifoQueue": "true",
        # off: a de-duplication id is always sent explicitly (two identical writes can be two real writes)
        "ContentBasedDeduplication": "false",
        # high-throughput FIFO: order and de-duplication per message group (one group per tenant connection)
        "DeduplicationScope": "messageGroup",
        "FifoThroughputLimit": "perMessageGroupId",
        "SqsManagedSseEnabled": "true",
    }
    if dlq:
        attrs["MessageRetentionPeriod"] = str(DLQ_RETENTION_SECONDS)
    else:
        attrs["VisibilityTimeout"] = str(visibility)
        attrs["ReceiveMessageWaitTimeSeconds"] = str(LONG_POLL_SECONDS)
    return attrs


def _redrive_policy(sqs, dlq_url: str, max_receive: int = MAX_RECEIVE_COUNT) -> str:
    arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": max_receive})


def _ensure_queue(sqs, name: str, attributes: dict[str, str], report: BootstrapReport) -> str:
    try:
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    except ClientError as exc:
        if _code(exc) not in {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}:
            raise
        report.created.append(f"sqs:{name}")
        return sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    # FifoQueue cannot change once created; everything else is brought to the wanted value
    mutable = {k: v for k, v in attributes.items() if k != "FifoQueue"}
    sqs.set_queue_attributes(QueueUrl=url, Attributes=mutable)
    report.existing.append(f"sqs:{name}")
    return url


def _ensure_bucket(s3, bucket: str, region: str, report: BootstrapReport) -> None:
    try:  # not create_bucket alone: in us-east-1 it also answers 200 for a bucket that already exists
        s3.head_bucket(Bucket=bucket)
        report.existing.append(f"s3:{bucket}")
    except ClientError as exc:
        if _code(exc) not in {"404", "NoSuchBucket", "NotFound"}:
            raise
        kwargs = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        s3.create_bucket(Bucket=bucket, **kwargs)
        report.created.append(f"s3:{bucket}")
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={
        "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True})
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [
        {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}, "BucketKeyEnabled": True}]})
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [{
        "ID": "archive-then-expire",
        "Status": "Enabled",
        "Filter": {"Prefix": ""},
        "Transitions": [{"Days": ARTIFACTS_GLACIER_AFTER_DAYS, "StorageClass": "GLACIER"}],
        "Expiration": {"Days": ARTIFACTS_EXPIRE_AFTER_DAYS},
        "NoncurrentVersionExpiration": {"NoncurrentDays": 30},
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7},
    }]})


def _code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")
