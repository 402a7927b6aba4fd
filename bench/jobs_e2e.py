"""`make bench` jobs: end-to-end `echo` jobs per second through a real Celery worker (default settings).

The clock runs from the first `create_job` (job row + outbox + publish, as the API does it; CREATORS threads)
until the last job is COMPLETED in the database; then every job must have completed exactly once
(attempts == 1). Also home of the child-process helpers both benchmarks use.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CREATORS = 4


def progress_line(label: str, done: int, total: int) -> None:
    sys.stderr.write(f"\r  {label:40} {done}/{total}" + ("\n" if done == total else ""))
    sys.stderr.flush()


def child_env(settings, **extra: str) -> dict:
    env = dict(os.environ, DATABASE_URL=settings.database_url, REDIS_URL=settings.redis_url, **extra)
    if settings.jwt_public_key_file:
        env["ZIXLY_JWT_PUBLIC_KEY_FILE"] = settings.jwt_public_key_file
    if settings.aws_endpoint_url:
        env["AWS_ENDPOINT_URL"] = settings.aws_endpoint_url
    if settings.data_keys:
        env["ZIXLY_DATA_KEYS"] = settings.data_keys
    return env


def spawn(argv: list[str], env: dict, log: Path) -> subprocess.Popen:
    """A child in its own process group (so stop_group reaches its workers), run from the project root."""
    with open(log, "ab") as out:
        return subprocess.Popen(argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


def stop_group(proc: subprocess.Popen, timeout: float = 15.0) -> None:
    """SIGTERM the child's process group, wait, then SIGKILL whatever is left of the group."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        time.sleep(0.2)  # the leader may exit before the rest of its group


def wait_listening(port: int, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"server on port {port} did not start (exit code {proc.poll()})")


def purge_tenant_tasks(slug: str) -> int:
    """Drop a tenant's jobs still waiting for a turn (e.g. the ingest bench's echo jobs, which no worker ran) and
    its still-queued Celery messages; the turns left in the broker then find nothing of it."""
    from core.platform import fair_queue
    from core.platform.runtime import redis_client
    from tenancy.context import tenant_context
    from tenancy.db import get_router
    from tenancy.provisioning import load_tenant_ref

    r = redis_client()
    with tenant_context(load_tenant_ref(get_router(), slug)):
        removed = fair_queue.waiting()
        fair_queue.forget_tenant()
    for key in r.scan_iter(match="zixly*", count=1000):
        if r.type(key) != b"list" or r.llen(key) > 500_000:
            continue
        pipe = r.pipeline(transaction=False)
        for raw in r.lrange(key, 0, -1):
            try:
                mine = json.loads(raw).get("headers", {}).get("zixly_tenant") == slug
            except (ValueError, AttributeError):
                continue
            if mine:
                pipe.lrem(key, 1, raw)
        removed += sum(pipe.execute())
    return removed


def _counts(ref) -> dict:
    from sqlalchemy import func, select

    from core.jobs.models import Job, JobStep
    from tenancy.context import tenant_context
    from tenancy.db import tenant_session

    with tenant_context(ref), tenant_session() as session:
        counts = {"steps": session.scalar(select(func.count()).select_from(JobStep).where(JobStep.status == "done"))}
        counts |= dict(session.execute(select(Job.status, func.count()).group_by(Job.status)).all())
        counts["retried"] = session.scalar(select(func.count()).select_from(Job).where(Job.attempts != 1))
    return counts


def _wait_done(ref, total: int, timeout: float, proc, on_poll=lambda finished: None) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        counts = _counts(ref)
        finished = sum(counts.get(s, 0) for s in ("COMPLETED", "FAILED", "CANCELLED"))
        on_poll(finished)
        if finished >= total or time.monotonic() > deadline:
            return counts
        if proc.poll() is not None:
            raise RuntimeError(f"the Celery worker exited with {proc.returncode}")
        time.sleep(0.2)


def _latencies(ref, exclude, until: str = "finished_at", percentiles=(0.5, 0.99)) -> tuple[float, float]:
    """Percentiles (p50 and p99) of created -> finished (queueing included; or -> `until`), in ms, over the
    completed jobs but those in `exclude`."""
    from sqlalchemy import func, select

    from core.jobs.models import Job
    from tenancy.context import tenant_context
    from tenancy.db import tenant_session

    d = func.extract("epoch", getattr(Job, until) - Job.created_at) * 1000
    query = select(*(func.percentile_cont(p).within_group(d) for p in percentiles)).where(
        Job.status == "COMPLETED", Job.id.notin_(exclude))
    with tenant_context(ref), tenant_session() as session:
        row = session.execute(query).one()
    return float(row[0] or 0), float(row[1] or 0)


PROFILED_JOBS = 200


def _redis_commands() -> int:
    from core.platform.runtime import redis_client

    return int(redis_client().info("stats")["total_commands_processed"])


def profile_turns(ref, actor, jobs: int = PROFILED_JOBS) -> dict:
    """What running a job costs in a worker child, deterministically: `jobs` echo jobs created, then turns run
    in-process (no Celery) until none is left, counting SQL statements, Redis commands and Python calls per job."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    from bench.hook_profile import profile_work
    from core.execution import turns
    from core.jobs import service as core_jobs
    from tenancy.context import tenant_context

    with tenant_context(ref):
        ids = [core_jobs.create_job(workflow="echo", data={"i": i}, actor=actor).id for i in range(jobs)]
    statements = [0]

    def count(*_args, **_kw):
        statements[0] += 1

    def run() -> int:
        ran = 0
        while turns.run_next_job(secrets.token_hex(8)) != turns.IDLE:
            ran += 1
        return ran

    event.listen(Engine, "before_cursor_execute", count)
    before = _redis_commands()
    try:
        profile = profile_work(run)
    finally:
        event.remove(Engine, "before_cursor_execute", count)
    commands = _redis_commands() - before - 1  # less the INFO that read the count
    done = max(profile["units"], 1)
    return {"ids": ids, "turns": profile["units"], "jobs": jobs, "statements_per_job": statements[0] / jobs,
            "redis_commands_per_job": commands / jobs, "calls_per_job": profile["calls_per_unit"] * done / jobs,
            "cpu_us_per_job_profiled": profile["cpu_us_per_unit_profiled"] * done / jobs}


def bench_jobs(settings, *, jobs: int = 1000, rate: float | None = None, progress=None,
               timeout: float | None = None) -> dict:
    """With `rate`, the creators pace themselves to `rate` jobs per second in all (the latency at a given load)."""
    from core.jobs import service as core_jobs
    from core.platform.actors import Actor
    from core.tenants import service as tenants
    from tenancy.apikeys import tenant_ref
    from tenancy.context import tenant_context

    progress = progress or progress_line
    slug = f"bench-jobs-{secrets.token_hex(3)}"
    tenant, _, _ = tenants.create_tenant(slug=slug, name="Jobs", plan="enterprise", actor=Actor("staff", "bench"))
    ref, actor = tenant_ref(tenant), Actor("system", "bench")
    timeout = timeout or max(60.0, jobs / 10)  # 10 jobs/s is a tenth of the goal
    turn_profile = profile_turns(ref, actor)
    profiled = turn_profile["jobs"]
    excluded = set(turn_profile.pop("ids"))
    failures: list[BaseException] = []

    def create(part: range) -> None:
        try:
            with tenant_context(ref):
                for i in part:
                    if rate:
                        time.sleep(max(0.0, start + i / rate - time.perf_counter()))
                    core_jobs.create_job(workflow="echo", data={"i": i}, actor=actor)
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    tmp = Path(tempfile.mkdtemp(prefix="zixly-bench-jobs-"))
    env = child_env(settings, ZIXLY_WORKER_CONCURRENCY=str(settings.worker_processes))
    proc = spawn([sys.executable, "-m", "celery", "-A", "workers.app", "worker", "--loglevel", "WARNING"], env,
                 tmp / "worker.log")
    try:
        start = time.perf_counter()
        with tenant_context(ref):  # readiness: a first job goes all the way through
            warm = core_jobs.create_job(workflow="echo", data={"warmup": True}, actor=actor)
        excluded.add(warm.id)
        if _wait_done(ref, profiled + 1, 120, proc).get("COMPLETED", 0) != profiled + 1:
            raise RuntimeError("the warm-up job did not complete within 120 s")
        ready_s = time.perf_counter() - start
        progress("jobs: worker ready", 0, jobs)
        start, commands = time.perf_counter(), _redis_commands()
        threads = [threading.Thread(target=create, args=(range(k, jobs, CREATORS),)) for k in range(CREATORS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout)
        created_s = time.perf_counter() - start
        if failures:
            raise failures[0]
        shown = [0]

        def on_poll(finished: int) -> None:
            done = max(0, min(jobs, finished - 1 - profiled))  # less the warm-up and profiled jobs
            if done == jobs or done >= shown[0] + max(1, jobs // 10):
                shown[0] = done
                progress("jobs: completed", done, jobs)

        counts = _wait_done(ref, profiled + jobs + 1, timeout, proc, on_poll)
        elapsed, commands = time.perf_counter() - start, _redis_commands() - commands
        p50, p99 = _latencies(ref, excluded)
        s50, s95 = _latencies(ref, excluded, until="started_at", percentiles=(0.5, 0.95))
    except BaseException:
        print(f"jobs bench failed; worker log kept in {tmp}", file=sys.stderr)
        raise
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    finally:
        stop_group(proc, timeout=30)
    completed = counts.get("COMPLETED", 0) - 1 - profiled
    return {"jobs": jobs, "rate": rate, "worker_concurrency": settings.worker_processes, "creators": CREATORS,
            "completed": completed,
            "failed": counts.get("FAILED", 0), "unfinished": counts.get("QUEUED", 0) + counts.get("RUNNING", 0),
            "retried": counts["retried"], "steps_done": counts["steps"] - 1 - profiled,
            "exactly_once": completed == jobs == counts["steps"] - 1 - profiled and counts["retried"] == 0,
            "elapsed_s": elapsed, "jobs_per_s": completed / elapsed, "create_s": created_s,
            "create_per_s": jobs / created_s, "ready_s": ready_s, "latency_p50_ms": p50, "latency_p99_ms": p99,
            "start_p50_ms": s50, "start_p95_ms": s95, "redis_commands_per_job": commands / jobs,
            "turn_profile": turn_profile,
            "timed_out": completed < jobs}
