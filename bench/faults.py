"""`make bench` faults: N signed webhooks while PostgreSQL and then Redis are each restarted once (Redis losing
its data), against servers of its own, so the rest of the run is untouched.

A sender posts the webhooks one after another through the Flask app in this process, and, as a provider does,
delivers again after a refusal (503) until it is accepted. One Celery worker process runs the jobs; a thread
here plays beat's part (the outbox relay and the stranded-job sweeper, every 2 s, with a 5 s threshold). Reported:
accepted, completed, completed twice (goal 0), lost (goal 0), how long each server was away, and the longest time
to recover (from the server being back to the next webhook accepted, and to the last job completed).
"""
from __future__ import annotations

import dataclasses
import secrets
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

from bench.jobs_e2e import child_env, progress_line, spawn, stop_group

WEBHOOKS = 300
RATE = 30.0  # webhooks a second, when none is refused
OUTAGE_SECONDS = 3.0
SECRET = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="


class _Beat(threading.Thread):
    """The relay, the sweeper and the inbox drain, as beat runs them (every 2 s here); errors while a server is away
    are skipped."""

    def __init__(self):
        super().__init__(name="bench-beat", daemon=True)
        self.stop = threading.Event()

    def run(self) -> None:
        from core.inbound import listener
        from core.jobs import sweeper
        from core.platform import maintenance, outbox

        while not self.stop.wait(2.0):
            try:
                maintenance.for_each_active_tenant(lambda: outbox.relay(min_age=timedelta(seconds=5)))
                maintenance.for_each_active_tenant(sweeper.sweep_stranded_jobs)
                listener.drain_all()  # beat's drain-inboxes: what no listener fanned out
            except Exception:  # a server is away: the next beat tries again
                pass


class _Fault(threading.Thread):
    def __init__(self, name: str, server):
        super().__init__(name=f"bench-fault-{name}", daemon=True)
        self.label, self.server = name, server
        self.down_at = self.up_at = None

    def run(self) -> None:
        self.down_at = time.monotonic()
        self.server.stop()
        time.sleep(OUTAGE_SECONDS)
        self.server.start()
        self.up_at = time.monotonic()


def _outcome(ref) -> dict:
    from sqlalchemy import func, select

    from core.inbound.models import InboundEvent, RawDelivery
    from core.jobs.models import Job, JobStep
    from tenancy.context import tenant_context
    from tenancy.db import tenant_session

    with tenant_context(ref), tenant_session() as session:
        # by the delivery's webhook-id (the receipt names no event: they are made behind the answer)
        events = set(session.scalars(select(InboundEvent.provider_event_id)))
        completed = Counter(session.scalars(select(InboundEvent.provider_event_id).join(
            Job, Job.event_id == InboundEvent.id).where(Job.status == "COMPLETED")))
        steps = session.scalar(select(func.count()).select_from(
            select(JobStep.job_id).where(JobStep.status == "done").group_by(JobStep.job_id)
            .having(func.count() > 1).subquery()))
        jobs = dict(session.execute(select(Job.status, func.count()).group_by(Job.status)).all())
        raw = session.scalar(select(func.count()).select_from(RawDelivery))
    return {"events": events, "completed": completed, "steps_twice": steps, "jobs": jobs, "raw_waiting": raw}


def bench_faults(settings, *, home: Path, webhooks: int = WEBHOOKS, progress=None) -> dict:
    import psycopg

    from api.app import create_app
    from core import bootstrap
    from core.connections import store
    from core.platform import outbox
    from core.platform.actors import Actor
    from core.tenants import service as tenants
    from core.workflows import settings as workflow_settings
    from devstack import EmbeddedPostgres, redis_server
    from sandbox.signing import sign
    from tenancy.apikeys import tenant_ref
    from tenancy.context import tenant_context
    from tenancy.db import get_router
    from tenancy.migrate import upgrade_catalog

    progress = progress or progress_line
    tmp = Path(tempfile.mkdtemp(prefix="zixly-bench-faults-", dir=home))
    pg = EmbeddedPostgres(tmp / "pg").start()
    redis = redis_server(tmp / "redis", persistent=False).start()
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:{pg.port}/postgres", autocommit=True) as conn:
        conn.execute("CREATE DATABASE faults")
    local = dataclasses.replace(settings, database_url=pg.url.rsplit("/", 1)[0] + "/faults",
                                redis_url=f"redis://127.0.0.1:{redis.port}/0", jobs_stranded_after=5,
                                job_lease_seconds=10)
    beat, proc, inbox = _Beat(), None, None
    try:
        bootstrap.init(local)
        upgrade_catalog(get_router().catalog_engine)
        ref = tenant_ref(tenants.create_tenant(slug=f"bench-faults-{secrets.token_hex(3)}", name="Faults",
                                               plan="enterprise", actor=Actor("staff", "bench"))[0])
        with tenant_context(ref):
            _, token = store.create_connection(provider="custom", webhook_secrets=[SECRET])
            workflow_settings.put_workflow("echo", {"enabled": True, "event_types": ["*"]},
                                           actor=Actor("staff", "bench"))  # echo is opt-in: one job per event
        client, path = create_app(local).test_client(), f"/v1/hooks/{token}"
        proc = spawn([sys.executable, "-m", "celery", "-A", "workers.app", "worker", "--loglevel", "WARNING"],
                     child_env(local, ZIXLY_JOB_LEASE_SECONDS="10"), tmp / "worker.log")
        inbox = spawn([sys.executable, "-m", "workers.inbox"], child_env(local), tmp / "inbox.log")
        beat.start()
        faults = {webhooks // 3: _Fault("PostgreSQL", pg), 2 * webhooks // 3: _Fault("Redis", redis)}
        answers, accepted, first_after = Counter(), set(), {}
        start = time.monotonic()
        for n in range(webhooks):
            if n in faults:
                faults[n].start()
            body, headers = sign("custom", f"http://localhost{path}", {"type": "ping", "n": n}, SECRET)
            while True:
                try:
                    r = client.post(path, data=body, headers=headers)
                    status = r.status_code
                except Exception as exc:  # what a provider would see as a broken connection
                    status = type(exc).__name__
                answers[status] += 1
                if status == 200:
                    assert r.get_json()["received"] == 1, r.get_json()
                    accepted.add(headers["webhook-id"])
                    now = time.monotonic()
                    for fault in faults.values():
                        if fault.up_at is not None and fault.label not in first_after:
                            first_after[fault.label] = now - fault.up_at
                    break
                time.sleep(0.2)
            time.sleep(max(0.0, start + (n + 1) / RATE - time.monotonic()))
            if (n + 1) % max(1, webhooks // 10) == 0:
                progress("faults: webhooks accepted", n + 1, webhooks)
        for fault in faults.values():
            fault.join()
        sent_at = time.monotonic()
        outbox.publisher.reset()
        deadline, outcome = sent_at + 300, None
        while time.monotonic() < deadline:
            outcome = _outcome(ref)
            if all(outcome["completed"].get(e) for e in accepted) or proc.poll() is not None:
                break  # done, or the worker is gone (nothing runs the rest: its exit is reported)
            time.sleep(0.5)
        drained_at = time.monotonic()
    except BaseException:
        print(f"faults bench failed; logs kept in {tmp}", file=sys.stderr)
        raise
    finally:
        beat.stop.set()
        worker_exit = proc.poll() if proc is not None else None
        if proc is not None:
            stop_group(proc, timeout=30)
        if inbox is not None:
            stop_group(inbox, timeout=30)
        get_router().dispose()
        redis.stop()
        pg.stop(quiet=True)
        bootstrap.init(settings)
    completed = {e for e in accepted if outcome["completed"].get(e)}
    if completed == accepted:
        shutil.rmtree(tmp, ignore_errors=True)
    else:  # the worker's, the inbox processor's logs say why
        print(f"faults bench: {len(accepted - completed)} lost; logs kept in {tmp}", file=sys.stderr)
    return {
        "webhooks": webhooks, "accepted": len(accepted), "completed": len(completed),
        "completed_twice": sum(1 for e in accepted if outcome["completed"].get(e, 0) > 1) + outcome["steps_twice"],
        "lost": len(accepted - completed), "kept_unacknowledged": len(outcome["events"] - accepted),
        "jobs_by_status": outcome["jobs"], "worker_exit": worker_exit, "raw_waiting": outcome["raw_waiting"],
        "answers": dict(answers), "send_s": sent_at - start,
        "outages": {f.label: f.up_at - f.down_at for f in faults.values()},
        "first_accepted_after": first_after,
        "drain_s": drained_at - sent_at,
        "recover_s": max([*first_after.values(), drained_at - max(f.up_at for f in faults.values())]),
    }


def report(result: dict) -> list[str]:
    answers = ", ".join(f"{n} x {status}" for status, n in sorted(result["answers"].items(), key=str))
    after = result["first_accepted_after"]
    outages = ", ".join(f"{name} away {s:.1f} s, next webhook accepted {after.get(name, 0):.1f} s after it was back"
                        for name, s in result["outages"].items())
    return ["", f"faults  {result['webhooks']} signed webhooks at up to {RATE:.0f}/s, PostgreSQL then Redis (data "
                f"lost) restarted once each; one Celery worker; relay and sweeper every 2 s",
            f"  accepted {result['accepted']}   completed {result['completed']}   completed twice "
            f"{result['completed_twice']} (goal 0)   lost {result['lost']} (goal 0)   kept but not acknowledged "
            f"{result['kept_unacknowledged']}",
            f"  answers: {answers}",
            f"  at the end: jobs by status {result['jobs_by_status']}; raw deliveries not yet fanned out "
            f"{result['raw_waiting']}" + (f"; THE WORKER EXITED ({result['worker_exit']})"
                                          if result["worker_exit"] is not None else ""),
            f"  {outages}",
            f"  sending took {result['send_s']:.1f} s; the last job completed {result['drain_s']:.1f} s after the last "
            f"webhook; longest time to recover {result['recover_s']:.1f} s (server back -> next webhook accepted, "
            f"or -> every job completed)"]


