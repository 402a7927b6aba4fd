"""`make bench` noisy: tenant B's webhook-to-completion latency while tenant A floods, against B alone.

One Celery worker process (default settings). B sends SAMPLES signed Standard Webhooks deliveries one after
another to its connection's endpoint (through the Flask app in this process); each sample's clock runs from
just before the POST until its job is COMPLETED in the database (polled). First B alone; then A queues FLOOD
echo jobs at once (job rows, outbox, admission, as the API and the inbox do it) and B sends again while the
worker is busy with A's backlog. Goal: B's p50 and p95 with the flood at most 2x B's alone.
"""
from __future__ import annotations

import secrets
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench.jobs_e2e import child_env, progress_line, spawn, stop_group

SAMPLES = 30
FLOOD = 5000
SECRET = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def _job_of_event(ref, event_id: str):
    from sqlalchemy import select

    from core.jobs.models import Job
    from tenancy.context import tenant_context
    from tenancy.db import tenant_session

    with tenant_context(ref), tenant_session() as session:
        return session.scalar(select(Job.status).where(Job.event_id == uuid.UUID(event_id)))


def _count(ref, status: str) -> int:
    from sqlalchemy import func, select

    from core.jobs.models import Job
    from tenancy.context import tenant_context
    from tenancy.db import tenant_session

    with tenant_context(ref), tenant_session() as session:
        return session.scalar(select(func.count()).select_from(Job).where(Job.status == status))


def _ahead(a, b, events: list[str]) -> list[int]:
    """For each of B's jobs: how many of A's jobs started after B's job was created and before it started."""
    from sqlalchemy import and_, func, select

    from core.jobs.models import Job
    from tenancy.context import tenant_context
    from tenancy.db import tenant_session

    with tenant_context(b), tenant_session() as session:
        spans = session.execute(select(Job.created_at, Job.started_at).where(
            Job.event_id.in_([uuid.UUID(e) for e in events]))).all()
    with tenant_context(a), tenant_session() as session:
        return [session.scalar(select(func.count()).select_from(Job).where(
            and_(Job.started_at > created, Job.started_at < started))) for created, started in spans]


def _sample(client, path: str, ref, timeout: float = 120.0, events: list | None = None) -> float:
    from sandbox.signing import sign

    body, headers = sign("custom", f"http://localhost{path}", {"type": "ping", "n": uuid.uuid4().hex}, SECRET)
    start = time.perf_counter()
    r = client.post(path, data=body, headers=headers)
    if r.status_code != 200:
        raise RuntimeError(f"B's webhook answered {r.status_code}: {r.get_data(as_text=True)[:300]}")
    assert r.get_json()["received"] == 1, r.get_json()  # kept raw; `zixly inbox` fans it out behind the answer
    deadline = start + timeout
    event_id = None
    while event_id is None or _job_of_event(ref, event_id) != "COMPLETED":
        event_id = event_id or _event_of_delivery(ref, headers["webhook-id"])
        if time.perf_counter() > deadline:
            raise RuntimeError(f"B's job did not complete within {timeout:.0f} s")
        time.sleep(0.005)
    if events is not None:
        events.append(event_id)
    return (time.perf_counter() - start) * 1000


def _event_of_delivery(ref, webhook_id: str) -> str | None:
    from sqlalchemy import select

    from core.inbound.models import InboundEvent
    from tenancy.context import tenant_context
    from tenancy.db import tenant_session

    with tenant_context(ref), tenant_session() as session:
        found = session.scalar(select(InboundEvent.id).where(InboundEvent.provider_event_id == webhook_id))
    return None if found is None else str(found)


def _series(label: str, client, path: str, ref, samples: int, progress, events=None) -> list[float]:
    times = []
    for i in range(samples):
        times.append(_sample(client, path, ref, events=events))
        if (i + 1) % max(1, samples // 5) == 0 or i + 1 == samples:
            progress(label, i + 1, samples)
    return times


def bench_noisy(settings, *, samples: int = SAMPLES, flood: int = FLOOD, progress=None) -> dict:
    from api.app import create_app
    from core.connections import store
    from core.jobs.creation import add_jobs
    from core.platform import fair_queue, outbox
    from core.platform.actors import Actor
    from core.tenants import service as tenants
    from core.workflows import settings as workflow_settings
    from tenancy.apikeys import tenant_ref
    from tenancy.context import tenant_context
    from tenancy.db import tenant_autocommit

    progress = progress or progress_line
    tag = secrets.token_hex(3)
    staff = Actor("staff", "bench")
    a = tenant_ref(tenants.create_tenant(slug=f"bench-flood-{tag}", name="Flood", plan="enterprise", actor=staff)[0])
    b = tenant_ref(tenants.create_tenant(slug=f"bench-quiet-{tag}", name="Quiet", plan="enterprise", actor=staff)[0])
    with tenant_context(b):
        _, token = store.create_connection(provider="custom", webhook_secrets=[SECRET])
        workflow_settings.put_workflow("echo", {"enabled": True, "event_types": ["*"]}, actor=staff)  # opt-in
    client, path = create_app(settings).test_client(), f"/v1/hooks/{token}"
    tmp = Path(tempfile.mkdtemp(prefix="zixly-bench-noisy-"))
    proc = spawn([sys.executable, "-m", "celery", "-A", "workers.app", "worker", "--loglevel", "WARNING"],
                 child_env(settings), tmp / "worker.log")
    inbox = spawn([sys.executable, "-m", "workers.inbox"], child_env(settings), tmp / "inbox.log")  # behind the 2xx
    try:
        _sample(client, path, b)  # warm-up: the worker is up and every pool is open
        alone = _series("noisy: B alone", client, path, b, samples, progress)
        start = time.perf_counter()
        with tenant_context(a):
            for first in range(0, flood, 1000):
                with tenant_autocommit() as connection:
                    added = add_jobs(connection, workflows=["echo"] * min(1000, flood - first),
                                     data={"flood": True}, created_by="bench:flood")
                outbox.publish([message for _, message in added])
                progress("noisy: A queues its flood", first + len(added), flood)
        queued_s = time.perf_counter() - start
        flood_events: list[str] = []
        flooded = _series("noisy: B while A floods", client, path, b, samples, progress, flood_events)
        a_done, a_left = _count(a, "COMPLETED"), _count(a, "QUEUED")
        ahead = _ahead(a, b, flood_events)
    except BaseException:
        print(f"noisy bench failed; worker log kept in {tmp}", file=sys.stderr)
        raise
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    finally:
        stop_group(proc, timeout=30)
        stop_group(inbox, timeout=30)
        with tenant_context(a):
            fair_queue.forget_tenant()  # A's rest never runs; its turns left in the broker find nothing
    out = {"samples": samples, "flood": flood, "queued_s": queued_s, "a_completed": a_done, "a_left": a_left,
           "workers": settings.worker_processes, "ahead_max": max(ahead),
           "ahead_mean": statistics.mean(ahead)}
    for name, values in (("alone", alone), ("flooded", flooded)):
        out[name] = {"p50": statistics.median(values), "p95": _pct(values, 95), "max": max(values)}
    out["ratio_p50"] = out["flooded"]["p50"] / out["alone"]["p50"]
    out["ratio_p95"] = out["flooded"]["p95"] / out["alone"]["p95"]
    return out


def report(result: dict) -> list[str]:
    lines = ["", f"noisy neighbour  B's signed webhook -> its job COMPLETED, {result['samples']} samples each, one "
                 f"Celery worker (concurrency {result['workers']}); A queued {result['flood']} echo jobs in "
                 f"{result['queued_s']:.1f} s",
             f"  {'':28}{'p50':>9}{'p95':>9}{'max':>9}"]
    for label, key in (("B alone", "alone"), ("B while A floods", "flooded")):
        r = result[key]
        lines.append(f"  {label:28}{r['p50']:>7.0f}ms{r['p95']:>7.0f}ms{r['max']:>7.0f}ms")
    lines.append(f"  ratio flooded/alone: p50 {result['ratio_p50']:.2f}   p95 {result['ratio_p95']:.2f}   (goal: <= 2)")
    lines.append(f"  A meanwhile: {result['a_completed']} of its jobs completed, {result['a_left']} still queued "
                 f"when B's last sample completed")
    lines.append(f"  A's jobs started between one of B's jobs being created and starting: mean "
                 f"{result['ahead_mean']:.1f}, max {result['ahead_max']} (fair turns bound it by the worker's "
                 f"{result['workers']} slots + 1)")
    return lines
