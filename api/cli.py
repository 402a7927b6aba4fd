"""The `zixly` command: tenants, database migrations, tokens, the spec, and `dev` (what `make run` calls)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import click

from api import cli_ops, cli_outbound
from core.config import Settings

HOME = Path(os.environ.get("ZIXLY_HOME", ".zixly"))


def _boot() -> Settings:
    from core import runtime

    return runtime.init(Settings.from_env())


@click.group()
def main():
    """Zixly: multi-tenant integration API."""


# --- tenants -------------------------------------------------------------------------------------------
@main.group()
def tenants():
    """Create and manage tenants."""


@tenants.command("create")
@click.argument("slug")
@click.option("--name", default=None, help="Display name (defaults to the slug).")
@click.option("--plan", default="free", show_default=True)
@click.option("--admin-email", default=None)
@click.option("--shard", default=None)
def tenants_create(slug, name, plan, admin_email, shard):
    """Provision a tenant and print its first ADMIN API key (shown once)."""
    from core import tenants as svc
    from core.actors import Actor

    _boot()
    tenant, key, secret = svc.create_tenant(slug=slug, name=name or slug, plan=plan, admin_email=admin_email,
                                            shard=shard, actor=Actor("staff", "cli"))
    click.echo(f"tenant {tenant.slug} is {tenant.status} on shard {tenant.shard} (schema {tenant.schema_name})")
    click.echo(f"ADMIN API key (shown once): {secret}")


@tenants.command("list")
@click.option("--status", default=None)
def tenants_list(status):
    """List tenants."""
    from core import tenants as svc

    _boot()
    after = None
    while True:
        rows = svc.list_tenants(limit=500, after_id=after, status=status)
        for t in rows:
            click.echo(f"{t.slug:40} {t.status:12} {t.plan:10} {t.shard:10} {t.schema_revision or '-'}")
        if len(rows) < 500:
            break
        after = rows[-1].id


def _lifecycle(name: str, doc: str, call):
    @tenants.command(name, help=doc)
    @click.argument("slug")
    def command(slug):
        from core.actors import Actor

        _boot()
        tenant = call(slug, Actor("staff", "cli"))
        click.echo(f"tenant {tenant.slug} is {tenant.status}")

    return command


def _svc():
    from core import tenants as svc

    return svc


_lifecycle("suspend", "Suspend a tenant.", lambda s, a: _svc().update_tenant(s, actor=a, status="suspended"))
_lifecycle("resume", "Resume a suspended tenant.", lambda s, a: _svc().update_tenant(s, actor=a, status="active"))
_lifecycle("archive", "Archive a tenant (schema kept).", lambda s, a: _svc().archive_tenant(s, actor=a))
_lifecycle("restore", "Restore an archived tenant.", lambda s, a: _svc().restore_tenant(s, actor=a))


# --- db ------------------------------------------------------------------------------------------------
@main.group()
def db():
    """Database migrations."""


from api import cli_fleet  # noqa: E402  (db upgrade/status/pool, shards, tenants move)

cli_fleet.register(main, db, tenants)


# --- auth ----------------------------------------------------------------------------------------------
@main.group()
def auth():
    """Development tokens."""


def _jwt_audience(staff: bool) -> str:
    """The `aud` the service expects of a staff or a tenant token, from the same settings it reads."""
    audience = os.environ.get("ZIXLY_JWT_AUDIENCE", "zixly-api")
    if not staff:
        return audience
    return Settings(database_url="", redis_url="", jwt_audience=audience,
                    jwt_staff_audience=os.environ.get("ZIXLY_JWT_STAFF_AUDIENCE") or None).jwt_staff_audience


@auth.command("token")
@click.option("--staff", is_flag=True, help="A staff token.")
@click.option("--tenant", default=None, help="Tenant slug for a tenant user token.")
@click.option("--role", type=click.Choice(["ADMIN", "EDITOR", "VIEWER"]), default="ADMIN", show_default=True)
@click.option("--subject", default=None, help="The `sub` claim (defaults to dev-staff / dev-user).")
@click.option("--ttl", default=3600, show_default=True, help="Lifetime in seconds.")
def auth_token(staff, tenant, role, subject, ttl):
    """Mint a bearer JWT with the local development key."""
    from api.tokens import mint

    if staff == bool(tenant):
        raise click.UsageError("give exactly one of --staff or --tenant SLUG")
    key = Path(os.environ.get("ZIXLY_JWT_PRIVATE_KEY_FILE", HOME / "jwt-private.pem"))
    if not key.exists():
        raise click.ClickException(f"no signing key at {key}: run `make run` once, or set ZIXLY_JWT_PRIVATE_KEY_FILE")
    click.echo(mint(key, issuer=os.environ.get("ZIXLY_JWT_ISSUER", "zixly-dev"), audience=_jwt_audience(staff),
                    subject=subject or ("dev-staff" if staff else "dev-user"), staff=staff, tenant=tenant,
                    role=None if staff else role, ttl=ttl))


# --- openapi -------------------------------------------------------------------------------------------
@main.group("openapi", invoke_without_command=True)
@click.option("--output", "-o", default=None, help="With no command: where `write` writes.")
@click.pass_context
def openapi(ctx, output):
    """The OpenAPI spec generated from the code (`zixly openapi [-o FILE]` alone is `zixly openapi write`)."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(openapi_write, output=output)


@openapi.command("write")
@click.option("--output", "-o", default=None, help="Default: openapi/openapi.yaml.")
def openapi_write(output):
    """Write the spec to openapi/openapi.yaml (commit it: it is the public contract)."""
    from api.spec import SPEC_FILE, render_spec

    path = Path(output) if output else SPEC_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_spec())
    click.echo(f"wrote {path}")


@openapi.command("check")
@click.option("--spec", "spec_file", default=None, help="Default: openapi/openapi.yaml.")
def openapi_check(spec_file):
    """Exit 1 when the committed spec differs from the code."""
    from api.spec import REGENERATE, SPEC_FILE, render_spec

    path = Path(spec_file) if spec_file else SPEC_FILE
    if not path.exists() or path.read_text() != render_spec():
        raise click.ClickException(f"{path} differs from the code: run `{REGENERATE}` and commit it")
    click.echo(f"{path} matches the code")


# --- worker -------------------------------------------------------------------------------------------
@main.command("worker", context_settings={"ignore_unknown_options": True})
@click.option("--concurrency", "-c", default=None, type=int,
              help="Worker processes (default: ZIXLY_WORKER_CONCURRENCY, or two per CPU core).")
@click.option("--beat/--no-beat", default=False, help="Also run the beat scheduler (one per deployment).")
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def worker(concurrency, beat, celery_args):
    """Run a Celery worker. SIGTERM is a warm shutdown: running jobs finish, then it exits."""
    argv = [sys.executable, "-m", "celery", "-A", "workers.app", "worker", "--loglevel", "INFO"]
    if concurrency:
        argv += ["--concurrency", str(concurrency)]
    if beat:
        argv += ["-B", "--schedule", str(HOME / "celerybeat-schedule")]
    _multiprocess_metrics_dir("worker")
    os.execv(sys.executable, argv + list(celery_args))


def _multiprocess_metrics_dir(name: str) -> None:
    """Prefork children write their samples to files the metrics endpoint aggregates; start from empty."""
    import shutil
    import tempfile

    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.path.join(tempfile.gettempdir(),
                                                                      f"zixly-metrics-{name}-{os.getpid()}")
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path


# --- keys ----------------------------------------------------------------------------------------------
@main.group()
def keys():
    """Data keys sealing tokens and webhook secrets."""


@keys.command("generate")
@click.option("--id", "kid", default=lambda: time.strftime("k%Y%m%d"), show_default="k<today>")
def keys_generate(kid):
    """Print a new data key entry for ZIXLY_DATA_KEYS (put it first to make it the primary)."""
    from core.crypto import generate_key

    click.echo(f"{kid}:{generate_key()}")


@keys.command("rotate")
def keys_rotate():
    """Re-seal every tenant's secrets under the primary data key (the first of ZIXLY_DATA_KEYS).
    Safe to run while serving: old keys keep working until this finishes and they are removed."""
    _boot()
    from core.connections import rotate_data_keys
    from tenancy.db import catalog_session
    from tenancy.models import Tenant

    with catalog_session() as session:
        total = session.query(Tenant).filter(Tenant.status.in_(("active", "suspended"))).count()
    with click.progressbar(length=total, label="re-sealing tenants", show_pos=True) as bar:
        summary = rotate_data_keys(progress=lambda slug: bar.update(1))
    click.echo(f"{summary['tenants']} tenant(s), {summary['connections_resealed']} connection(s) re-sealed")
    for slug, error in summary["failed"].items():
        click.echo(f"FAILED {slug}: {error}", err=True)
    if summary["failed"]:
        sys.exit(1)


# --- dev -----------------------------------------------------------------------------------------------
@main.command("dev")
@click.option("--port", default=lambda: int(os.environ.get("PORT", 8000)), show_default="PORT or 8000")
@click.option("--simulate-providers/--no-simulate-providers", default=True, show_default=True,
              help="Serve local Xero, HubSpot, Shopify, Asana and Salesforce simulators and point Zixly at them.")
def dev(port, simulate_providers):
    """Start embedded servers (unless env names real ones), migrate, and serve the API with a worker."""
    from core.devstack import DevStack

    stack = DevStack(HOME, persistent=True)
    children: list[subprocess.Popen] = []
    stopping = False

    def stop(signum=None, frame=None):
        nonlocal stopping
        if stopping:
            return
        stopping = True
        click.echo("\nstopping …")
        for proc in reversed(children):
            _terminate(proc)
        stack.stop()
        click.echo("stopped.")
        sys.exit(0)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        env = stack.start(progress=click.echo)
        os.environ.update(env)
        from api.tokens import generate_signing_key

        generate_signing_key(HOME)
        os.environ.setdefault("ZIXLY_JWT_PUBLIC_KEY_FILE", str(HOME / "jwt-public.pem"))
        _dev_data_key()
        os.environ.setdefault("ZIXLY_LOG_FORMAT", "text")
        os.environ.setdefault("ZIXLY_PUBLIC_BASE_URL", f"http://127.0.0.1:{port}")
        _multiprocess_metrics_dir("dev")
        simulator = _start_simulator(os.environ["ZIXLY_PUBLIC_BASE_URL"]) if simulate_providers else None
        _boot()
        _prepare_database()
        _bootstrap_aws()
        api_key = _demo_tenant_key()
        from api.tokens import mint

        staff = mint(HOME / "jwt-private.pem", issuer=os.environ.get("ZIXLY_JWT_ISSUER", "zixly-dev"),
                     audience=_jwt_audience(True), subject="dev-staff",
                     staff=True, ttl=12 * 3600)
        py = sys.executable
        children.append(_spawn([py, "-m", "celery", "-A", "workers.app", "worker", "-B", "--loglevel", "INFO",
                                "--concurrency", "2", "--schedule", str(HOME / "celerybeat-schedule")]))
        children.append(_spawn([py, "-m", "workers.consumer", "--threads", "2"]))
        children.append(_spawn([py, "-m", "gunicorn", "-c", "python:api.gunicorn_conf", "--bind", f"127.0.0.1:{port}",
                                "--workers", "2", "--threads", "4", "api.wsgi:app"]))
        _wait_http(port, children[-1])
        base = f"http://127.0.0.1:{port}"
        click.echo("\n" + "=" * 72)
        click.echo(f"Zixly API      {base}   (docs: {base}/docs, spec: {base}/openapi.json)")
        click.echo(f"demo tenant    demo   X-API-Key: {api_key}")
        click.echo(f"staff token    Authorization: Bearer {staff}")
        click.echo(f"try            curl -H 'X-API-Key: {api_key}' {base}/v1/tenant")
        if simulator is not None:
            click.echo(f"providers      simulated at {simulator.url} — connect one with\n               curl -X POST "
                       f"-H 'X-API-Key: {api_key}' -H 'Content-Type: application/json' "
                       f"-d '{{\"provider\": \"xero\"}}' {base}/v1/connections   (then open its authorize_url)")
        click.echo("=" * 72 + "\nCtrl-C stops everything.\n")
        while all(p.poll() is None for p in children):
            time.sleep(0.5)
        click.echo("a child process exited; shutting down", err=True)
        stop()
    except SystemExit:
        raise
    except BaseException:  # start-up failed: leave nothing running
        for proc in children:
            _terminate(proc)
        stack.stop()
        raise


DEV_APPS = {p: (f"zixly-dev-{p}", f"zixly-dev-{p}-secret") for p in ("xero", "hubspot", "shopify", "asana",
                                                                     "salesforce")}


def _start_simulator(public_base: str):
    """The provider simulators, in this process, with Zixly's dev apps registered; Zixly is pointed at them
    (an explicit development setting: nothing but `zixly dev` sets it)."""
    from sandbox import Simulator

    simulator = Simulator(port=int(os.environ.get("ZIXLY_SIMULATOR_PORT", 0))).start()
    for provider, (client_id, secret) in DEV_APPS.items():
        simulator.register_app(provider, client_id, secret, [f"{public_base.rstrip('/')}/v1/oauth/callback"])
        os.environ.setdefault(f"ZIXLY_{provider.upper()}_CLIENT_ID", client_id)
        os.environ.setdefault(f"ZIXLY_{provider.upper()}_CLIENT_SECRET", secret)
    os.environ["ZIXLY_PROVIDER_SIMULATOR_URL"] = simulator.url
    click.echo(f"provider simulators on {simulator.url}")
    return simulator


def _bootstrap_aws() -> None:
    from core import aws
    from core.runtime import settings

    try:
        report = aws.bootstrap(settings(), bucket=settings().artifacts_bucket)
        click.echo(f"queues and bucket ready ({len(report.created)} created, {len(report.existing)} existing)")
    except Exception as exc:  # the API still serves; outbound deliveries and artifacts wait for it
        click.echo(f"warning: could not create the queues and bucket: {exc}", err=True)


def _dev_data_key() -> None:
    """A local data key for sealing secrets, made once and kept in .zixly/ (production: env or Secrets Manager)."""
    from core.crypto import generate_key

    key_file = HOME / "data-keys"
    if os.environ.get("ZIXLY_DATA_KEYS") or key_file.exists():
        return
    key_file.write_text(f"dev1:{generate_key()}\n")
    key_file.chmod(0o600)


def _prepare_database() -> None:
    from tenancy.db import get_router
    from tenancy.fleet import upgrade_fleet

    result = upgrade_fleet(get_router())
    click.echo(f"catalog migrated; tenants: {len(result.migrated)} migrated, {len(result.failed)} failed")
    from core.tenants import refill_schema_pool

    refill_schema_pool()  # before the worker starts, so its first beat finds the pool full


def _demo_tenant_key() -> str:
    """Create the demo tenant once; keep its key in .zixly/ so a second run prints the same one."""
    from core import tenants as svc
    from core.actors import Actor
    from tenancy import apikeys, provisioning
    from tenancy.db import catalog_session, get_router

    key_file = HOME / "demo-api-key"
    try:
        tenant = provisioning.get_tenant(get_router(), "demo")
    except provisioning.TenantNotFound:
        tenant = None
    if tenant is not None and tenant.status == "archived":
        provisioning.restore_tenant(get_router(), "demo")
    if tenant is not None and tenant.status == "suspended":
        provisioning.change_status(get_router(), "demo", "resume")
    if tenant is None or tenant.status == "failed":
        _, _, secret = svc.create_tenant(slug="demo", name="Demo Company", plan="pro",
                                         actor=Actor("staff", "make-run"))
        key_file.write_text(secret)
        key_file.chmod(0o600)
        return secret
    if key_file.exists():
        secret = key_file.read_text().strip()
        try:
            with catalog_session() as session:
                apikeys.authenticate(session, secret)
            return secret
        except apikeys.InvalidApiKey:
            pass
    with catalog_session() as session, session.begin():
        _, secret = apikeys.issue(session, tenant_id=tenant.id, name="make run demo key", role="ADMIN",
                                  environment="test", created_by="staff:make-run")
    key_file.write_text(secret)
    key_file.chmod(0o600)
    return secret


def _spawn(argv: list[str]) -> subprocess.Popen:
    return subprocess.Popen(argv, start_new_session=True, env=os.environ.copy())


def _terminate(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


def _wait_http(port: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise click.ClickException("the API server exited during start-up")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise click.ClickException(f"the API did not answer on port {port} within {timeout}s")


cli_ops.register(main)  # beat, aws bootstrap
cli_outbound.register(main)  # outbound (the delivery consumer)

if __name__ == "__main__":
    main()
