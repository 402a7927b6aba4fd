"""`zixly aws bootstrap` against the suite's real moto server, and `zixly beat` started for real."""
from __future__ import annotations

import json
import os
import shelve
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from connectors.registry import SCHEMES
from core import bootstrap
from core.platform import aws
from core.platform.queue import celery_app
from zixly_cli.main import main


@pytest.fixture()
def aws_env(settings, servers, monkeypatch):
    for name, value in {"DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url,
                        "AWS_ENDPOINT_URL": settings.aws_endpoint_url, "AWS_DEFAULT_REGION": settings.aws_region,
                        "AWS_ACCESS_KEY_ID": servers.get("AWS_ACCESS_KEY_ID", "testing"),
                        "AWS_SECRET_ACCESS_KEY": servers.get("AWS_SECRET_ACCESS_KEY", "testing")}.items():
        monkeypatch.setenv(name, value)
    yield settings
    bootstrap.init(settings)


def _attributes(sqs, name: str) -> dict:
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]


def test_bootstrap_creates_the_queues_and_the_bucket_and_can_run_again(aws_env):
    bucket = f"zixly-artifacts-test-{os.getpid()}"
    first = CliRunner().invoke(main, ["aws", "bootstrap", "--bucket", bucket])
    assert first.exit_code == 0, first.output
    sqs, s3 = aws.client("sqs", aws_env), aws.client("s3", aws_env)
    for provider in aws.OUTBOUND_PROVIDERS:
        queue = _attributes(sqs, aws.outbound_queue_name(provider))
        dlq = _attributes(sqs, aws.outbound_dlq_name(provider))
        for attrs in (queue, dlq):
            assert attrs["FifoQueue"] == "true"
            assert attrs["ContentBasedDeduplication"] == "false"
            assert (attrs["DeduplicationScope"], attrs["FifoThroughputLimit"]) == ("messageGroup", "perMessageGroupId")
        assert json.loads(queue["RedrivePolicy"]) == {"deadLetterTargetArn": dlq["QueueArn"], "maxReceiveCount": 5}
        assert int(queue["VisibilityTimeout"]) > aws.OUTBOUND_CALL_TIMEOUT_SECONDS * aws.OUTBOUND_CALLS_PER_MESSAGE
        assert dlq["MessageRetentionPeriod"] == str(14 * 24 * 3600)
    note, note_dlq = _attributes(sqs, aws.NOTIFICATION_QUEUE), _attributes(sqs, aws.NOTIFICATION_DLQ)
    assert "FifoQueue" not in note
    assert json.loads(note["RedrivePolicy"])["deadLetterTargetArn"] == note_dlq["QueueArn"]

    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    assert set(s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"].values()) == {True}
    lifecycle = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"][0]
    assert lifecycle["Transitions"][0] == {"Days": 90, "StorageClass": "GLACIER"}
    assert lifecycle["Expiration"]["Days"] == 7 * 365

    # a second run creates nothing, and puts back a setting someone changed by hand
    url = sqs.get_queue_url(QueueName=aws.outbound_queue_name("xero"))["QueueUrl"]
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "5"})
    again = CliRunner().invoke(main, ["aws", "bootstrap", "--bucket", bucket])
    assert again.exit_code == 0, again.output
    assert f"0 created, {len(aws.queue_names()) + 1} already existed" in again.output
    assert _attributes(sqs, aws.outbound_queue_name("xero"))["VisibilityTimeout"] == str(
        aws.OUTBOUND_VISIBILITY_TIMEOUT_SECONDS)


def test_every_outbound_provider_is_a_known_connector():
    assert set(aws.OUTBOUND_PROVIDERS) <= set(SCHEMES)
    assert len(set(aws.queue_names())) == 2 * len(aws.OUTBOUND_PROVIDERS) + 2


def test_beat_runs_the_app_schedule_with_its_state_in_the_given_folder(settings, tmp_path):
    bootstrap.init(settings)  # the schedule beat should run is the one the app configures
    state = tmp_path / "beat-state"
    env = dict(os.environ, DATABASE_URL=settings.database_url, REDIS_URL=settings.redis_url, ZIXLY_HOME=str(tmp_path))
    zixly = Path(sys.executable).with_name("zixly")
    proc = subprocess.Popen([str(zixly), "beat", "--state-dir", str(state)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None and not any(state.glob("celerybeat-schedule*")):
            time.sleep(0.2)
        assert proc.poll() is None, proc.stdout.read()
        assert any(state.glob("celerybeat-schedule*")), "beat wrote no schedule state"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        output, _ = proc.communicate(timeout=20)
    assert "beat: Starting" in output
    assert not (tmp_path / "celerybeat-schedule").exists()  # nothing outside the state folder
    with shelve.open(str(state / "celerybeat-schedule"), flag="r") as saved:  # what beat persisted: our schedule
        assert set(saved["entries"]) >= set(celery_app.conf.beat_schedule) >= {"relay-outbox"}
