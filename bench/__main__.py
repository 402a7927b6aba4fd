"""`make bench`: provisioning speed and tenant-routing overhead, side by side in one run, with the machine.

Runs against the embedded servers (or DATABASE_URL / REDIS_URL), in a fresh database that is dropped after.
Suites (default: all): provisioning, routing, profile, ingest, jobs, fleet, outbound, workflow, noisy,
faults, subscriptions, console. Options: --webhook-workers 2,4 and --webhook-deliveries N (subscriptions,
default 2000), --tenants N
(provisioning: 200, fleet: 1000), --requests N (default 2000), --ingest-seconds S (default 10), --jobs N (default 1000),
--fleet-workers N (default 4), --deliveries N (outbound, default 1000), --top N (profile: call sites printed, 25).
Only the fleet benchmark: `make bench BENCH_ARGS="fleet --tenants 1000"`; the per-webhook profile with its top
call sites: `make bench BENCH_ARGS="profile --top 40"`.
"""
from __future__ import annotations

import argparse
import os
import platform
import secrets
import statistics
import sys
import time
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy import MetaData, Table, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parent.parent


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem = int(next(ln for ln in Path("/proc/meminfo").read_text().splitlines()
                       if ln.startswith("MemTotal")).split()[1]) // 1024 // 1024
    except (OSError, StopIteration):
        mem = 0
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, {cpu}, {mem} GiB RAM, " \
           f"Python {platform.python_version()}"


def progress(label: str, done: int, total: int) -> None:
    width = 30
    filled = width * done // max(total, 1)
    sys.stderr.write(f"\r  {label:28} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
    if done == total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def bench_provisioning(n: int) -> dict:
    from tenancy.db import get_router
    from tenancy.provisioning import create_tenant

    router, times = get_router(), []
    for i in range(n):
        start = time.perf_counter()
        create_tenant(router, slug=f"bench-{i:05d}", name=f"Bench {i}")
        times.append((time.perf_counter() - start) * 1000)
        progress("provisioning tenants", i + 1, n)
    with router.catalog_engine.connect() as conn:
        tables = conn.execute(text("select count(*) from pg_tables where schemaname = 't_bench_00000'")).scalar()
        indexes = conn.execute(text("select count(*) from pg_indexes where schemaname = 't_bench_00000'")).scalar()
    return {"median_ms": statistics.median(times), "p95_ms": pct(times, 95), "max_ms": max(times),
            "tables": tables, "indexes": indexes}


def _timed(label: str, fn, n: int) -> list[float]:
    times = []
    for i in range(n):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e6)
        if (i + 1) % max(1, n // 4) == 0 or i + 1 == n:
            progress(label, i + 1, n)
    return times


def bench_routing(n: int) -> dict:
    """The same audit-log read (key auth, query args, ORM query, schema dump) with and without tenancy.

    Rate limiting is off for both compared paths (the bypassed view is public) and measured on its own.

    The bypassed view is the routed view's twin, registered by the benchmark: same decorators, same ORM
    query and serialization, but it maps the table at the tenant's literal schema and runs with no tenant
    context, no status check and no schema translation.
    """
    from flask import request
    from flask.views import MethodView
    from flask_smorest import Blueprint
    from sqlalchemy.orm import DeclarativeBase

    from api.app import create_app
    from api.auth import PUBLIC, access
    from api.common import page
    from api.resources.tenant import AuditPageSchema, AuditQueryArgsSchema
    from core.platform import runtime
    from core.platform.actors import Actor
    from core.tenants import service as tenants
    from tenancy import apikeys
    from tenancy.db import catalog_session, get_router

    tenant, _, secret = tenants.create_tenant(slug="bench-routing", name="Routing", plan="enterprise",
                                              actor=Actor("staff", "bench"))
    for i in range(20):
        from core.platform import audit
        from tenancy.apikeys import tenant_ref
        from tenancy.context import tenant_context

        with tenant_context(tenant_ref(tenant)):
            audit.record_now(actor=Actor("system", "bench"), action="bench.seed", target_id=str(i))
    app = create_app(runtime.settings())
    engine = get_router().shard_engine(tenant.shard)

    class Base(DeclarativeBase):
        pass

    class DirectAudit(Base):  # the same table, mapped at its literal schema: no context, no translation
        __table__ = Table("audit_log", MetaData(schema=tenant.schema_name), autoload_with=engine)

    blp = Blueprint("bench", __name__, url_prefix="/bench")

    @blp.route("/direct-audit-log")
    class Direct(MethodView):
        @access(PUBLIC)
        @blp.arguments(AuditQueryArgsSchema, location="query")
        @blp.response(200, AuditPageSchema)
        def get(self, args):
            with catalog_session() as session:  # the same key authentication as the routed path
                apikeys.authenticate(session, request.headers["X-API-Key"])
            with Session(engine, expire_on_commit=False) as session:
                rows = list(session.scalars(select(DirectAudit).order_by(DirectAudit.id.desc())
                                            .limit(args["limit"] + 1)))
            return page(rows, args["limit"], lambda e: e.id)

    app.extensions["flask-smorest"]["apis"][""]["ext_obj"].register_blueprint(blp)
    client = app.test_client()
    headers = {"X-API-Key": secret}
    limiter = app.extensions["zixly_limiter"]
    limiter.enabled = False  # the bypassed (public) view is not rate-limited; compare like with like

    def limited():
        limiter.enabled = True
        try:
            return client.get("/v1/audit-log", headers=headers)
        finally:
            limiter.enabled = False

    variants = {
        "routed": lambda: client.get("/v1/audit-log", headers=headers),
        "bypassed": lambda: client.get("/bench/direct-audit-log", headers=headers),
        "limited": limited,
    }
    assert len(variants["routed"]().get_json()["items"]) == len(variants["bypassed"]().get_json()["items"]) > 0
    for _ in range(200):  # warm caches and pools on every path
        for fn in variants.values():
            fn()
    results = {name: [] for name in variants}
    rounds = 20
    for r in range(rounds):  # interleave so drift on a shared 2-core machine hits all alike
        for name, fn in variants.items():
            results[name] += _timed(f"{name} ({r + 1}/{rounds})", fn, n // rounds)
    out = {}
    for name, values in results.items():
        out[f"{name}_us"], out[f"{name}_p95_us"] = statistics.median(values), pct(values, 95)
    out["ratio"] = out["routed_us"] / out["bypassed_us"]
    return out


SUITES = ("provisioning", "routing", "profile", "ingest", "jobs", "fleet", "outbound", "workflow", "noisy", "faults",
          "subscriptions", "console")


def main() -> None:
    parser = argparse.ArgumentParser(prog="make bench")
    parser.add_argument("suites", nargs="*", default=[], help=f"any of {', '.join(SUITES)} (default: all)")
    parser.add_argument("--tenants", type=int, default=None)
    parser.add_argument("--fleet-workers", type=int, default=4)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--ingest-seconds", type=float, default=10.0)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--jobs-rate", type=float, default=None, help="jobs: create at this many jobs/s")
    parser.add_argument("--deliveries", type=int, default=1000)
    parser.add_argument("--top", type=int, default=25, help="profile: how many call sites to print")
    parser.add_argument("--webhook-workers", default="2,4")
    parser.add_argument("--webhook-deliveries", type=int, default=2000)
    args = parser.parse_args()
    suites = set(args.suites or SUITES)
    if suites - set(SUITES):
        parser.error(f"unknown suite(s) {sorted(suites - set(SUITES))}; choose from {', '.join(SUITES)}")

    from api.tokens import generate_signing_key
    from bench.ingest import bench_ingest
    from bench.jobs_e2e import bench_jobs
    from core import bootstrap
    from core.platform.config import Settings
    from core.platform.crypto import generate_key
    from devstack import DevStack
    from tenancy.db import get_router
    from tenancy.migrate import upgrade_catalog

    home = ROOT / ".zixly" / "bench"
    stack = DevStack(home, persistent=False)
    env = stack.start(progress=lambda m: print(m, file=sys.stderr))
    base = env["DATABASE_URL"]
    libpq = make_url(base).set(drivername="postgresql").render_as_string(hide_password=False)
    dbname = f"zixly_bench_{secrets.token_hex(3)}"
    with psycopg.connect(libpq, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
        pg_version = conn.execute("show server_version").fetchone()[0]
    try:
        generate_signing_key(home)
        settings = Settings(database_url=make_url(base).set(database=dbname).render_as_string(hide_password=False),
                            redis_url=env["REDIS_URL"], jwt_public_key_file=str(home / "jwt-public.pem"),
                            data_keys=f"bench:{generate_key()}")
        bootstrap.init(settings)
        upgrade_catalog(get_router().catalog_engine)
        print(f"machine: {machine()}; PostgreSQL {pg_version}", file=sys.stderr)
        prov = bench_provisioning(args.tenants or 200) if "provisioning" in suites else None
        routing = bench_routing(args.requests) if "routing" in suites else None
        from tenancy.fleet import upgrade_fleet

        upgrade_fleet(get_router())
        hook_profile = None
        if suites & {"profile", "ingest"}:
            from bench.ingest import profile_ingest

            hook_profile = profile_ingest(settings, top=args.top if "profile" in suites else 0)
        ingest = bench_ingest(settings, seconds=args.ingest_seconds, progress=progress) if "ingest" in suites \
            else None
        jobs = bench_jobs(settings, jobs=args.jobs, rate=args.jobs_rate, progress=progress) if "jobs" in suites \
            else None
        deliveries = None
        if "outbound" in suites:
            from bench.outbound import bench_outbound

            os.environ.setdefault("AWS_ACCESS_KEY_ID", env.get("AWS_ACCESS_KEY_ID", "testing"))
            os.environ.setdefault("AWS_SECRET_ACCESS_KEY", env.get("AWS_SECRET_ACCESS_KEY", "testing"))
            deliveries = bench_outbound(settings, aws_endpoint_url=env["AWS_ENDPOINT_URL"],
                                        deliveries=args.deliveries, progress=progress)
        workflow = None
        if "workflow" in suites:
            from bench.workflow_latency import bench_workflow

            os.environ.setdefault("AWS_ACCESS_KEY_ID", env.get("AWS_ACCESS_KEY_ID", "testing"))
            os.environ.setdefault("AWS_SECRET_ACCESS_KEY", env.get("AWS_SECRET_ACCESS_KEY", "testing"))
            workflow = bench_workflow(settings, aws_endpoint_url=env["AWS_ENDPOINT_URL"], progress=progress)
        noisy = None
        if "noisy" in suites:
            from bench.noisy_neighbour import bench_noisy

            noisy = bench_noisy(settings, progress=progress)
        faults = None
        if "faults" in suites:
            from bench.faults import bench_faults

            faults = bench_faults(settings, home=home, progress=progress)
        webhooks = None
        if "subscriptions" in suites:
            from bench.subscriptions import bench_subscriptions

            webhooks = bench_subscriptions(settings, workers=[int(n) for n in args.webhook_workers.split(",")],
                                           deliveries=args.webhook_deliveries, progress=progress)
        console = None
        if "console" in suites:
            from bench.console import bench_console

            console = bench_console(settings, requests=min(args.requests, 500), progress=progress)
        fleet = None
        if "fleet" in suites:
            from bench.fleet import bench_fleet

            load_before = _load()
            fleet = bench_fleet(base, tenants=args.tenants or 1000, jobs=args.fleet_workers, env=env, home=home,
                                progress=progress)
            load = (load_before, _load())
    finally:
        try:
            get_router().dispose()
        finally:
            with psycopg.connect(libpq, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))
            stack.stop()

    print()
    print(f"Zixly benchmark — {time.strftime('%Y-%m-%d %H:%M:%S')}")
    print(f"machine    {machine()}; PostgreSQL {pg_version}")
    if prov:
        _print_provisioning(args, prov)
    if routing:
        _print_routing(args, routing)
    if hook_profile and "profile" in suites:
        from bench.hook_profile import report as profile_report

        print("\n".join(profile_report(hook_profile)))
    if ingest:
        _print_ingest(args, ingest, hook_profile)
    if jobs:
        _print_jobs(args, jobs)
    if deliveries:
        from bench.outbound import report as outbound_report

        print()
        print("\n".join(outbound_report(args, deliveries)))
    if workflow:
        from bench.workflow_latency import report as workflow_report

        print("\n".join(workflow_report(workflow)))
    if noisy:
        from bench.noisy_neighbour import report as noisy_report

        print("\n".join(noisy_report(noisy)))
    if faults:
        from bench.faults import report as faults_report

        print("\n".join(faults_report(faults)))
    if webhooks:
        from bench.subscriptions import report as subscriptions_report

        print("\n".join(subscriptions_report(webhooks)))
    if console:
        from bench.console import report as console_report

        print()
        print("\n".join(console_report(console)))
    if fleet:
        from bench.fleet import report

        print()
        print("\n".join(report(fleet, load)))


def _load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def _print_provisioning(args, prov) -> None:
    print()
    print(f"provisioning  {args.tenants or 200} tenants; tenant tree: {prov['tables']} tables, "
          f"{prov['indexes']} indexes")
    print(f"  median {prov['median_ms']:.1f} ms   p95 {prov['p95_ms']:.1f} ms   max {prov['max_ms']:.1f} ms"
          f"   (goal: median <= 50 ms)")


def _print_routing(args, routing) -> None:
    print()
    print(f"routing overhead  GET /v1/audit-log (API key, 20 rows), {args.requests} requests per side, interleaved")
    print(f"  {'':24}{'median':>10}{'p95':>10}")
    print(f"  {'through tenancy':24}{routing['routed_us']:>8.0f}us{routing['routed_p95_us']:>8.0f}us")
    print(f"  {'tenancy bypassed':24}{routing['bypassed_us']:>8.0f}us{routing['bypassed_p95_us']:>8.0f}us")
    print(f"  ratio routed/bypassed: {routing['ratio']:.3f}   (goal: <= 1.10)")
    print(f"  {'with plan rate limits':24}{routing['limited_us']:>8.0f}us{routing['limited_p95_us']:>8.0f}us"
          f"   (the same routed read counted against the tenant's and the key's limits in Redis)")


def _print_ingest(args, ingest, hook_profile=None) -> None:
    print()
    print("ingest  signed Xero webhook (1 event, kept raw before the 200; its event and job made behind it)")
    print(f"  vs bare Flask 202, both gunicorn {ingest['server']}, "
          f"{args.ingest_seconds:.0f} s per run")
    print(f"  {'':24}{'max req/s':>10}{'p50':>10}{'p99':>10}   latency open loop at {ingest['rate']:.0f} req/s"
          f" (half the bare max)")
    for label, key in (("through Zixly", "ingest"), ("bare Flask", "bare")):
        top, lat = ingest[f"{key}_max"], ingest[f"{key}_open"]
        print(f"  {label:24}{top['rps']:>10.0f}{lat['p50_ms']:>8.1f}ms{lat['p99_ms']:>8.1f}ms")
    floor = ingest["floor_max"]
    print(f"  {'durable floor':24}{floor['rps']:>10.0f}{'':>20}   bare Flask + one committed INSERT of the body "
          f"({ingest['floor_rows']} rows)")
    own = ingest["ingest_own"]
    print(f"  {'through Zixly, half load':24}{'':>10}{own['p50_ms']:>8.1f}ms{own['p99_ms']:>8.1f}ms   "
          f"open loop at {ingest['own_rate']:.0f} req/s (half its own max)")
    print(f"  ratio durable floor/bare: {ingest['floor_ratio']:.3f}   Zixly/durable floor: "
          f"{ingest['ingest_max']['rps'] / floor['rps']:.3f}")
    print(f"  ratio Zixly/bare: {ingest['ratio']:.3f}   (goal: >= 0.5)   "
          f"p99 at {ingest['rate']:.0f} req/s: {ingest['ingest_open']['p99_ms']:.0f} ms   (goal: <= 50 ms)")
    print(f"  durable: {ingest['events']} events, {ingest['jobs']} jobs for {ingest['ok_200']} answers 200 "
          f"({'ok' if ingest['durable'] else 'MISMATCH'}); {ingest['errors']} errors")
    print(f"  fan-out behind the answer (`zixly inbox`, one process, running during every phase): "
          f"{ingest['processor_cpu_s'] * 1000 / max(ingest['ok_200'], 1):.2f} ms CPU per delivery; the backlog was "
          f"gone {ingest['drain_s']:.1f} s after the last run")
    if hook_profile:
        from bench.hook_profile import per_request_line

        print(f"  per webhook: {per_request_line(hook_profile)}")
    if ingest["note"]:
        print(f"  note: {ingest['note']}")


def _print_jobs(args, jobs) -> None:
    print()
    print(f"jobs end to end  {jobs['jobs']} echo jobs created by {jobs['creators']} threads, one Celery worker "
          f"(default settings, concurrency {jobs['worker_concurrency']})")
    if jobs["rate"]:
        print(f"  created at {jobs['rate']:.0f} jobs/s (paced)")
    print(f"  {jobs['jobs_per_s']:.0f} jobs/s   (goal: >= 100)   {jobs['completed']}/{jobs['jobs']} completed "
          f"in {jobs['elapsed_s']:.1f} s from the first create; creating took {jobs['create_s']:.1f} s")
    print(f"  created -> completed: p50 {jobs['latency_p50_ms']:.0f} ms   p99 {jobs['latency_p99_ms']:.0f} ms")
    print(f"  created -> started:   p50 {jobs['start_p50_ms']:.0f} ms   p95 {jobs['start_p95_ms']:.0f} ms   "
          f"(machine shared: load {os.getloadavg()[0]:.1f})")
    print(f"  {jobs['redis_commands_per_job']:.1f} Redis commands per job end to end (API, broker, turn)")
    t = jobs["turn_profile"]
    print(f"  a worker child per job (turns in-process, {t['jobs']} jobs): {t['statements_per_job']:.2f} SQL "
          f"statements, {t['redis_commands_per_job']:.2f} Redis commands, {t['calls_per_job']:.0f} Python calls, "
          f"{t['cpu_us_per_job_profiled']:.0f} µs CPU under cProfile; {t['turns']} turns ran them")
    print(f"  exactly once: {'yes' if jobs['exactly_once'] else 'NO'} ({jobs['retried']} retried, "
          f"{jobs['failed']} failed, {jobs['unfinished']} unfinished)")


if __name__ == "__main__":
    main()
