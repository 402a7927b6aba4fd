"""Fleet benchmark: provisioning, a fleet migration, a no-op run and per-connection memory at N tenants, for
Zixly and for django-tenants (installed from PyPI into its own venv) on the same PostgreSQL, in the same run.

Each side gets its own fresh database on the server; both are dropped afterwards.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
RUNNER = Path(__file__).resolve().parent / "djt_runner.py"
NEW_MIGRATION = '''revision = "bench9999"
down_revision = "{head}"
branch_labels = None
depends_on = None
import sqlalchemy as sa
from alembic import op


def upgrade():
    op.create_table("notes", sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
                    sa.Column("body", sa.Text, nullable=False, server_default=""))
    op.add_column("jobs", sa.Column("priority", sa.Integer, nullable=False, server_default="5"))
    op.create_index("ix_jobs_priority", "jobs", ["priority"])
'''


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class Database:
    """A throwaway database on the benchmark server."""

    def __init__(self, base_url: str, prefix: str):
        self.base, self.name = base_url, f"{prefix}_{secrets.token_hex(3)}"
        self.url = make_url(base_url).set(database=self.name).render_as_string(hide_password=False)

    def __enter__(self):
        with psycopg.connect(_libpq(self.base), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.name)))
        return self

    def __exit__(self, *exc):
        with psycopg.connect(_libpq(self.base), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.name)))


def summary(values: list[float]) -> dict:
    ordered = sorted(values)
    return {"n": len(values), "median": statistics.median(values), "min": ordered[0], "max": ordered[-1],
            "p95": ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]}


def backend_memory(conn) -> dict:
    pid, total, cache = conn.execute(text(
        "SELECT pg_backend_pid(), (SELECT sum(total_bytes) FROM pg_backend_memory_contexts),"
        " (SELECT total_bytes FROM pg_backend_memory_contexts WHERE name = 'CacheMemoryContext')")).one()
    rss = None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                rss = int(line.split()[1])
    except OSError:
        pass
    return {"pid": pid, "contexts": int(total), "cache": int(cache or 0), "rss_anon_kb": rss}


# --- Zixly ---------------------------------------------------------------------------------------------
def bench_zixly(base_url: str, *, tenants: int, jobs: int, sample: int, noop_runs: int, env: dict,
                progress) -> dict:
    from tenancy import migrate, pool, provisioning
    from tenancy.db import Router
    from tenancy.fleet import upgrade_fleet
    from tenancy.migrate import upgrade_catalog

    out: dict = {}
    with Database(base_url, "zixly_fleetbench") as db:
        router = Router(db.url, pool_size=jobs + 1, max_overflow=jobs)
        try:
            upgrade_catalog(router.catalog_engine)
            sample = min(sample, tenants)
            direct = []
            for i in range(sample):  # no pool: the rendered head script, in the request
                started = time.perf_counter()
                provisioning.create_tenant(router, slug=f"bench-{i:05d}", name=f"Bench {i}")
                direct.append((time.perf_counter() - started) * 1000)
                progress("zixly: provisioning, no pool", i + 1, sample)
            rest = tenants - sample
            started = time.perf_counter()
            done = [0]

            def created(_shard):
                done[0] += 1
                progress("zixly: filling the pool", done[0], rest)

            pool.refill(router, target=rest, jobs=jobs, on_created=created)
            refill_s = time.perf_counter() - started
            pooled = []
            for i in range(sample, tenants):
                started = time.perf_counter()
                provisioning.create_tenant(router, slug=f"bench-{i:05d}", name=f"Bench {i}")
                pooled.append((time.perf_counter() - started) * 1000)
                progress("zixly: provisioning from pool", i + 1 - sample, rest)
            out["provision_direct_ms"], out["provision_pooled_ms"] = summary(direct), summary(pooled or [0.0])
            out["pool_refill_ms_per_schema"] = refill_s * 1000 / max(rest, 1)

            tree = Path(tempfile.mkdtemp(prefix="zixly-bench-tree-")) / "tenant"
            shutil.copytree(migrate.TENANT_DIR, tree)
            (tree / "versions" / "9999_bench.py").write_text(NEW_MIGRATION.format(head=migrate.tenant_head()))
            real_dir, migrate.TENANT_DIR = migrate.TENANT_DIR, tree
            try:
                count = {"done": 0, "total": 0}

                def migrated(_slug):
                    count["done"] += 1
                    progress("zixly: fleet migration", count["done"], count["total"])

                result = upgrade_fleet(router, jobs=jobs, on_start=lambda n: count.update(total=n),
                                       on_tenant=migrated)
                assert result.ok and len(result.migrated) == tenants, (result.failed, len(result.migrated))
                out["migrate_s"] = result.elapsed
                noops = []
                for _ in range(noop_runs):
                    r = upgrade_fleet(router, jobs=jobs)
                    assert r.noop
                    noops.append(r.elapsed * 1000)
                out["noop_ms"] = summary(noops)
                out["noop_cli_s"] = _cli_noop(db.url, env, tree)
            finally:
                migrate.TENANT_DIR = real_dir
                shutil.rmtree(tree.parent, ignore_errors=True)
            out["memory"] = _zixly_memory(db.url, progress)
            with router.catalog_engine.connect() as conn:
                out["tables"] = conn.execute(text(
                    "SELECT count(*) FROM pg_tables WHERE schemaname = 't_bench_00000'")).scalar()
        finally:
            router.dispose()
    return out


def _cli_noop(url: str, env: dict, tree: Path) -> float:
    """`zixly db upgrade` as an operator runs it, process start included (the head is the bench tree's)."""
    code = ("import sys; from tenancy import migrate; from pathlib import Path; "
            f"migrate.TENANT_DIR = Path({str(tree)!r}); from zixly_cli.main import main; "
            "sys.argv = ['zixly', 'db', 'upgrade']; main()")
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env, "DATABASE_URL": url},
                          capture_output=True, text=True, cwd=ROOT)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0 or "nothing to do" not in proc.stdout:
        raise RuntimeError(f"zixly db upgrade (no-op) failed: {proc.stdout} {proc.stderr}")
    return elapsed


def _zixly_memory(url: str, progress) -> dict:
    """One pooled connection reads two tables of every tenant through Zixly's routing."""
    from core.jobs.models import Job
    from core.platform.models import AuditEntry
    from tenancy.apikeys import tenant_ref
    from tenancy.context import tenant_context
    from tenancy.db import Router
    from tenancy.models import Tenant

    router = Router(url, pool_size=1, max_overflow=0)
    try:
        with router.catalog_session() as session:
            refs = [tenant_ref(t) for t in session.scalars(select(Tenant).order_by(Tenant.id))]
        with router.catalog_engine.connect() as conn:
            before = backend_memory(conn)
        for i, ref in enumerate(refs):
            with tenant_context(ref), router.tenant_session() as session:
                session.scalar(select(func.count()).select_from(Job))
                session.scalar(select(func.count()).select_from(AuditEntry))
            if (i + 1) % max(1, len(refs) // 10) == 0:
                progress("zixly: touching every schema", i + 1, len(refs))
        with router.catalog_engine.connect() as conn:
            after = backend_memory(conn)
        assert after["pid"] == before["pid"], "the pool gave another connection"
        return {"touched": len(refs), "before": before, "after": after}
    finally:
        router.dispose()


# --- django-tenants ------------------------------------------------------------------------------------
def djt_python(home: Path) -> tuple[Path, str]:
    """A venv with django-tenants from PyPI (created once under .zixly/bench); returns python and versions."""
    venv = home / "djt-venv"
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    probe = ("import django, django_tenants, importlib.metadata as m; "
             "print(django.get_version(), m.version('django-tenants'))")
    check = subprocess.run([str(python), "-c", probe], capture_output=True, text=True)
    if check.returncode != 0:
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "django-tenants",
                        "psycopg[binary]"], check=True)
        check = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, check=True)
    django_version, djt_version = check.stdout.split()
    return python, f"django-tenants {djt_version}, Django {django_version}"


def bench_djt(base_url: str, *, home: Path, tenants: int, jobs: int, sample: int, clone_sample: int,
              noop_runs: int, progress) -> dict:
    python, versions = djt_python(home)
    out: dict = {"versions": versions}
    port = str(make_url(base_url).port)
    root = Path(tempfile.mkdtemp(prefix="djt-bench-"))
    with Database(base_url, "djt_fleetbench") as db:
        def run(phase, *extra, label=None, total=0):
            argv = [str(python), str(RUNNER), phase, "--root", str(root), "--dbname", db.name, "--port", port,
                    *map(str, extra)]
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for line in proc.stderr:
                if label and line.startswith("progress "):
                    done = int(line.split()[1].split("/")[0])
                    progress(label, done, total)
            stdout = proc.stdout.read()
            if proc.wait() != 0:
                raise RuntimeError(f"django-tenants phase {phase} failed (exit {proc.returncode})")
            return json.loads(stdout.strip().splitlines()[-1])

        try:
            run("write-apps", "--version", 1)
            run("setup")
            sample = min(sample, tenants)
            direct = run("provision", "--count", sample, "--progress", label="djt: provisioning (migrate)",
                         total=sample)["times_ms"]
            clone_sample = min(clone_sample, tenants - sample)
            cloned = run("provision", "--start", sample, "--count", clone_sample, "--mode", "clone", "--progress",
                         label="djt: provisioning (clone)", total=clone_sample)["times_ms"] if clone_sample else []
            rest = tenants - sample - clone_sample
            if rest:
                run("replicate", "--start", sample + clone_sample, "--count", rest, "--progress",
                    label="djt: building the rest (setup)", total=rest)
            out["provision_migrate_ms"] = summary(direct)
            out["provision_clone_ms"] = summary(cloned) if cloned else None
            run("write-apps", "--version", 2)
            run("makemigration")
            progress("djt: fleet migration (running)", 0, 1)
            out["migrate_s"] = run("migrate", "--executor", "multiprocessing", "--jobs", jobs)["seconds"]
            progress("djt: fleet migration (running)", 1, 1)
            noops = []
            for i in range(noop_runs):
                noops.append(run("migrate", "--executor", "multiprocessing", "--jobs", jobs)["seconds"] * 1000)
                progress("djt: no-op runs", i + 1, noop_runs)
            out["noop_ms"] = summary(noops)
            out["memory"] = run("memory")
        finally:
            shutil.rmtree(root, ignore_errors=True)
    return out


def bench_fleet(base_url: str, *, tenants: int, jobs: int, env: dict, home: Path, progress,
                sample: int = 50, djt_sample: int = 20, djt_clone_sample: int = 10, noop_runs: int = 5,
                djt_noop_runs: int = 2) -> dict:
    zixly = bench_zixly(base_url, tenants=tenants, jobs=jobs, sample=sample, noop_runs=noop_runs, env=env,
                        progress=progress)
    djt = bench_djt(base_url, home=home, tenants=tenants, jobs=jobs, sample=djt_sample,
                    clone_sample=djt_clone_sample, noop_runs=djt_noop_runs, progress=progress)
    return {"zixly": zixly, "djt": djt, "tenants": tenants, "jobs": jobs}


def per_schema_kb(memory: dict, key: str) -> float:
    return (memory["after"][key] - memory["before"][key]) / max(memory["touched"], 1) / 1024


def report(result: dict, load: tuple[str, str]) -> list[str]:
    z, d, n = result["zixly"], result["djt"], result["tenants"]
    djt_best = min(x["median"] for x in (d["provision_migrate_ms"], d["provision_clone_ms"]) if x)
    lines = [
        f"fleet  {n} tenants, {result['jobs']} workers on each side; django side: {d['versions']} "
        f"(multiprocessing executor, {result['jobs']} processes)",
        f"  load average before / after: {load[0]} / {load[1]} (2 cores; other work on the machine skews both sides)",
        f"  {'':34}{'Zixly':>14}{'django-tenants':>18}{'ratio':>9}   goal",
        _row("provisioning, median per tenant", f"{z['provision_pooled_ms']['median']:.1f} ms",
             f"{djt_best:.0f} ms", djt_best / z["provision_pooled_ms"]["median"], "<= 20 ms, >= 5x"),
        f"    Zixly from the pool: p95 {z['provision_pooled_ms']['p95']:.1f} ms, max "
        f"{z['provision_pooled_ms']['max']:.1f} ms (n={z['provision_pooled_ms']['n']}); "
        f"without a pool (DDL in the request): median "
        f"{z['provision_direct_ms']['median']:.0f} ms (n={z['provision_direct_ms']['n']}); pool refill in the "
        f"background: {z['pool_refill_ms_per_schema']:.0f} ms per schema",
        f"    django-tenants: migrate median {d['provision_migrate_ms']['median']:.0f} ms "
        f"(n={d['provision_migrate_ms']['n']})" + (
            f", clone (TENANT_BASE_SCHEMA) median {d['provision_clone_ms']['median']:.0f} ms "
            f"(n={d['provision_clone_ms']['n']})" if d["provision_clone_ms"] else ""),
        _row("fleet migration, one new migration", f"{z['migrate_s']:.1f} s", f"{d['migrate_s']:.1f} s",
             d["migrate_s"] / z["migrate_s"], "<= 60 s, >= 5x"),
        _row("no-op run (in process)", f"{z['noop_ms']['median']:.0f} ms", f"{d['noop_ms']['median']:.0f} ms",
             d["noop_ms"]["median"] / z["noop_ms"]["median"], "<= 1 s, >= 5x"),
        f"    spread: Zixly {z['noop_ms']['min']:.0f}–{z['noop_ms']['max']:.0f} ms over {z['noop_ms']['n']} runs; "
        f"django-tenants {d['noop_ms']['min']:.0f}–{d['noop_ms']['max']:.0f} ms over {d['noop_ms']['n']}; "
        f"`zixly db upgrade` as a command, Python start-up included: {z['noop_cli_s']:.2f} s",
        _row("memory per schema touched (contexts)", f"{per_schema_kb(z['memory'], 'contexts'):.1f} KB",
             f"{per_schema_kb(d['memory'], 'contexts'):.1f} KB",
             per_schema_kb(d["memory"], "contexts") / max(per_schema_kb(z["memory"], "contexts"), 1e-9), ""),
        f"    one backend after reading 2 tables in each of {z['memory']['touched']} schemas: Zixly "
        f"{z['memory']['after']['contexts'] / 2**20:.1f} MB contexts "
        f"(CacheMemoryContext {z['memory']['after']['cache'] / 2**20:.1f} MB, RssAnon "
        f"{(z['memory']['after']['rss_anon_kb'] or 0) / 1024:.1f} MB) vs django-tenants "
        f"{d['memory']['after']['contexts'] / 2**20:.1f} MB ({d['memory']['after']['cache'] / 2**20:.1f} MB, "
        f"{(d['memory']['after']['rss_anon_kb'] or 0) / 1024:.1f} MB); it is the server's relation cache, the same "
        f"for both; Zixly bounds it by recycling connections (pool_recycle)",
    ]
    return lines


def _row(label: str, ours: str, theirs: str, ratio: float, goal: str) -> str:
    return f"  {label:34}{ours:>14}{theirs:>18}{ratio:>8.1f}x   {goal}"
