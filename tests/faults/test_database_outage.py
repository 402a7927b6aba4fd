"""PostgreSQL stopped while webhooks and API calls arrive, then started again: every answer meanwhile is a 2xx
for something committed or a 503 problem+json (never a 500), the API and the workers recover by themselves, and
every acknowledged event and job completes once.

The test runs a PostgreSQL server of its own (the suite's keeps running) and its own Redis and worker.
"""
import dataclasses

import psycopg
import pytest
from celery.contrib.testing.worker import start_worker
from sqlalchemy import func, select

import workers.jobs  # noqa: F401  (registers the tasks)
from core.connections import store
from core.inbound import processor
from core.inbound.models import InboundEvent
from core.jobs.models import Job, JobStep
from core.platform import outbox
from core.platform.queue import celery_app
from devstack import EmbeddedPostgres
from sandbox.signing import sign
from tenancy.context import tenant_context
from tenancy.db import get_router, tenant_session
from tenancy.migrate import upgrade_catalog
from tests.faults.conftest import wait_until

SECRET = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="


@pytest.fixture()
def own_postgres(tmp_path, local_settings):
    server = EmbeddedPostgres(tmp_path / "pg").start()
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:{server.port}/postgres", autocommit=True) as conn:
        conn.execute("CREATE DATABASE outage")
    local = local_settings(database_url=server.url.rsplit("/", 1)[0] + "/outage", db_pool_size=4,
                           db_max_overflow=4, job_lease_seconds=5)
    upgrade_catalog(get_router().catalog_engine)
    yield server, local
    get_router().dispose()
    server.stop(quiet=True)


class Traffic:
    """Sends webhooks and job requests; keeps what was acknowledged and every answer's status."""

    def __init__(self, client, tenant, hook_path):
        self.client, self.tenant, self.hook_path = client, tenant, hook_path
        self.events, self.jobs, self.answers = set(), set(), []

    def hook(self, n):
        body, headers = sign("custom", f"http://localhost{self.hook_path}", {"type": "ping", "n": n}, SECRET)
        r = self.client.post(self.hook_path, data=body, headers=headers)
        self._note(r)
        if r.status_code == 200:  # its one event kept (raw, fanned out behind the answer)
            assert r.get_json() == {"received": 1, "dropped": 0}
            self.events.add(headers["webhook-id"])
        return r

    def job(self, n):
        r = self.client.post("/v1/jobs", json={"workflow": "echo", "input": {"n": n}}, headers=self.tenant.headers)
        self._note(r)
        if r.status_code == 202:
            self.jobs.add(r.get_json()["id"])
        return r

    def read(self):
        r = self.client.get("/v1/jobs?limit=5", headers=self.tenant.headers)
        self._note(r)
        return r

    def _note(self, r):
        self.answers.append((r.status_code, r.content_type))

    def round(self, n):
        return [self.hook(n).status_code, self.job(n).status_code, self.read().status_code]


def running(t) -> int:
    with tenant_context(t.ref), tenant_session() as session:
        return session.scalar(select(func.count()).select_from(Job).where(Job.status == "RUNNING"))


def test_postgres_stopped_and_started_again_loses_nothing_and_answers_503_meanwhile(own_postgres, make_tenant):
    server, local = own_postgres
    from api.app import create_app

    client = create_app(dataclasses.replace(local)).test_client()
    t = make_tenant("pgout")
    with tenant_context(t.ref):
        _, token = store.create_connection(provider="custom", webhook_secrets=[SECRET])
    r = client.put("/v1/workflows/echo", json={"enabled": True, "event_types": ["*"]}, headers=t.headers)
    assert r.status_code == 200, r.get_json()  # echo is opt-in: each webhook's event starts one echo job
    traffic = Traffic(client, t, f"/v1/hooks/{token}")
    with start_worker(celery_app, pool="threads", concurrency=2, perform_ping_check=False, shutdown_timeout=30):
        for n in range(5):
            assert traffic.round(n) == [200, 202, 200]
        for n in range(4):  # jobs running when the database goes: the workers lose it mid-job
            assert traffic.client.post("/v1/jobs", json={"workflow": "echo", "input": {"sleep": 1, "n": n}},
                                       headers=t.headers).status_code == 202
        assert wait_until(lambda: running(t) > 0, timeout=30)
        server.stop()  # PostgreSQL goes away while traffic keeps coming
        down = [traffic.round(100 + n) for n in range(10)]
        assert {status for answers in down for status in answers} == {503}, down
        server.start()  # same port, same data
        outbox.publisher.reset()
        assert wait_until(lambda: traffic.round(200) == [200, 202, 200], timeout=60)  # the API recovered itself
        for n in range(5):
            assert traffic.round(300 + n) == [200, 202, 200]
        with tenant_context(t.ref):  # what `zixly inbox` (or beat's drain-inboxes) does behind the answers
            processor.process_pending()

        def all_done():
            with tenant_context(t.ref), tenant_session() as session:
                return session.scalar(select(func.count()).select_from(Job).where(Job.status != "COMPLETED")) == 0

        assert wait_until(all_done, timeout=120)  # the workers recovered themselves
    assert all(status < 500 or (status == 503 and kind == "application/problem+json")
               for status, kind in traffic.answers), traffic.answers
    with tenant_context(t.ref), tenant_session() as session:
        jobs = {str(job.id): job for job in session.scalars(select(Job))}
        events = {e.provider_event_id: e for e in session.scalars(select(InboundEvent))}
        steps = session.execute(select(JobStep.job_id, func.count()).where(JobStep.status == "done")
                                .group_by(JobStep.job_id)).all()
    assert set(events) == traffic.events  # every acknowledged event kept, nothing kept that was not acknowledged
    assert {e.status for e in events.values()} == {"processed"}
    from_events = {str(job.id) for job in jobs.values() if job.event_id is not None}
    assert set(jobs) - from_events >= traffic.jobs and len(from_events) == len(traffic.events)
    assert len(jobs) == len(traffic.jobs) + len(from_events) + 4  # the four that were running
    assert {job.status for job in jobs.values()} == {"COMPLETED"}
    assert sorted(n for _, n in steps) == [1] * len(jobs)  # each job's step once
