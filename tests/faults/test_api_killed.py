"""The API process killed with SIGKILL between commit and publish: what it acknowledged is published by the
relay, and nothing runs twice.

A real gunicorn process answers job requests. First its broker is unreachable, so each 202 is committed (job and
outbox row) and nothing is published when the process is killed. Then, with the broker reachable, it is killed
right after its answers, before it marked what it published (the outbox rows are deleted lazily): the relay
publishes those rows again, and the claim runs each job once.
"""
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from celery.contrib.testing.worker import start_worker
from sqlalchemy import func, select

from core.jobs.models import Job, JobStep
from core.platform import outbox
from core.platform.models import OutboxMessage
from core.platform.queue import celery_app
from devstack import free_port
from tenancy.context import tenant_context
from tenancy.db import tenant_session
from tests.faults.conftest import wait_until
from workers.jobs import relay_all_outboxes

ROOT = Path(__file__).resolve().parents[2]


def start_api(local, home: Path, redis_url: str):
    port = free_port()
    env = {**os.environ, "DATABASE_URL": local.database_url, "REDIS_URL": redis_url,
           "AWS_ENDPOINT_URL": local.aws_endpoint_url, "ZIXLY_DATA_KEYS": local.data_keys,
           "ZIXLY_JWT_PUBLIC_KEY_FILE": local.jwt_public_key_file, "ZIXLY_HOME": str(home),
           "ZIXLY_LOG_FORMAT": "text", "PROMETHEUS_MULTIPROC_DIR": str(home / f"metrics-{port}")}
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "python:api.gunicorn_conf", "--bind",
                             f"127.0.0.1:{port}", "--workers", "1", "--threads", "2", "api.wsgi:app"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=open(home / f"api-{port}.log", "wb"),
                            start_new_session=True)

    def listening():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            assert proc.poll() is None, (home / f"api-{port}.log").read_text()[-2000:]
            return False

    assert wait_until(listening, timeout=60, every=0.2)
    return proc, port


def kill(proc) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def post_job(port, t, n) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", "/v1/jobs", body=json.dumps({"workflow": "echo", "input": {"n": n}}),
                     headers={**t.headers, "Content-Type": "application/json"})
        resp = conn.getresponse()
        body = json.loads(resp.read())
        assert resp.status == 202, body
        return body["id"]
    finally:
        conn.close()


def outbox_rows(t) -> int:
    with tenant_context(t.ref), tenant_session() as session:
        return session.scalar(select(func.count()).select_from(OutboxMessage))


def test_the_api_killed_between_commit_and_publish_loses_nothing_and_runs_nothing_twice(
        local_settings, make_tenant, tmp_path):
    local = local_settings()
    t = make_tenant("killed")
    unreachable = f"redis://127.0.0.1:{free_port()}/0"
    api, port = start_api(local, tmp_path, unreachable)
    try:
        unpublished = [post_job(port, t, n) for n in range(10)]
    finally:
        kill(api)
    assert outbox_rows(t) == 10  # committed, never published: only the outbox knows them
    api, port = start_api(local, tmp_path, local.redis_url)
    try:
        published = [post_job(port, t, 100 + n) for n in range(10)]
    finally:
        kill(api)  # at once: its published rows may not be deleted yet
    with start_worker(celery_app, pool="threads", concurrency=2, perform_ping_check=False, shutdown_timeout=30):
        outbox.publisher.reset()
        relay_all_outboxes(min_age=0)  # what beat runs every 10 s (there, for rows older than 30 s)
        accepted = set(unpublished) | set(published)

        def all_done():
            with tenant_context(t.ref), tenant_session() as session:
                done = session.scalars(select(Job.id).where(Job.status == "COMPLETED")).all()
            return {str(job_id) for job_id in done} == accepted

        assert wait_until(all_done, timeout=120)
    assert outbox_rows(t) == 0
    with tenant_context(t.ref), tenant_session() as session:
        attempts = set(session.scalars(select(Job.attempts)))
        steps = session.execute(select(JobStep.job_id, func.count()).group_by(JobStep.job_id)).all()
    assert attempts == {1} and len(steps) == 20 and {n for _, n in steps} == {1}  # every job ran once
