"""`zixly dev` (what `make run` calls): the development stack of devstack/ (embedded servers unless env names
real ones), then a migrated database, the queues and bucket, a demo tenant, and the API with a worker, the
outbound consumer and (by default) the provider simulators. Ctrl-C stops everything.

The local state (signing key, data key, demo tenant key, servers' data) is kept in ZIXLY_HOME (.zixly).
"""
from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import sys
import time
from pathlib import Path

import click

from api.tokens import generate_signing_key, mint
from console import dev_links
from core.platform import aws, runtime
from core.platform.actors import Actor
from core.platform.crypto import generate_key
from core.platform.errors import Conflict, Invalid, NotFound, Unavailable, UpstreamFailed
from core.tenants import service as svc
from devstack import DevServices, DevStack, StartupError, dev_env, start_simulators, test_events
from tenancy import apikeys, provisioning
from tenancy.db import catalog_session, get_router
from tenancy.fleet import upgrade_fleet
from zixly_cli import common


@click.group("dev", invoke_without_command=True)
@click.option("--port", default=lambda: int(os.environ.get("PORT", 8000)), show_default="PORT or 8000")
@click.option("--simulate-providers/--no-simulate-providers", default=True, show_default=True,
              help="Serve local Xero, HubSpot, Shopify, Asana and Salesforce simulators and point Zixly at them.")
@click.pass_context
def dev(ctx, port, simulate_providers):
    """Start embedded servers (unless env names real ones), migrate, and serve the API with a worker.

    `zixly dev send-webhook PROVIDER EVENT` sends a test event through the simulators of a running `zixly dev`."""
    if ctx.invoked_subcommand is None:
        serve(port, simulate_providers)


def serve(port: int, simulate_providers: bool) -> None:
    home = common.home()
    stack = DevStack(home, persistent=True)
    services = DevServices(home, port)
    stopping = False

    def stop(signum=None, frame=None):
        nonlocal stopping
        if stopping:
            return
        stopping = True
        click.echo("\nstopping …")
        dev_env.remove(home)
        services.stop()
        stack.stop()
        click.echo("stopped.")
        sys.exit(0)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        env = stack.start(progress=click.echo)
        os.environ.update(env)
        generate_signing_key(home)
        os.environ.setdefault("ZIXLY_JWT_PUBLIC_KEY_FILE", str(home / "jwt-public.pem"))
        _dev_data_key(home)
        _dev_console_settings(home)
        _dev_app_webhook_key(home)
        os.environ.setdefault("ZIXLY_METRICS_PUBLIC", "true")  # a loopback-only stack; production sets a token
        os.environ.setdefault("ZIXLY_PUBLIC_BASE_URL", f"http://127.0.0.1:{port}")
        common.multiprocess_metrics_dir("dev")
        simulator = start_simulators(os.environ["ZIXLY_PUBLIC_BASE_URL"], progress=click.echo) \
            if simulate_providers else None
        common.boot()
        _prepare_database()
        _bootstrap_aws()
        api_key = _demo_tenant_key(home)
        staff = mint(home / "jwt-private.pem", issuer=os.environ.get("ZIXLY_JWT_ISSUER", "zixly-dev"),
                     audience=common.jwt_audience(True), subject="dev-staff",
                     staff=True, ttl=12 * 3600)
        services.start()
        dev_env.write(home)
        base = f"http://127.0.0.1:{port}"
        click.echo("\n" + "=" * 72)
        click.echo(f"Zixly API      {base}   (docs: {base}/docs, spec: {base}/openapi.json)")
        click.echo(f"demo tenant    demo   X-API-Key: {api_key}")
        click.echo(f"staff token    Authorization: Bearer {staff}")
        click.echo(f"try            curl -H 'X-API-Key: {api_key}' {base}/v1/tenant")
        if simulator is not None:
            click.echo(f"providers      simulated at {simulator.url} — connect one with\n               curl -c jar "
                       f"-H 'X-API-Key: {api_key}' -H 'Content-Type: application/json' "
                       f"-d '{{\"provider\": \"xero\"}}' {base}/v1/connections\n               then "
                       "curl -b jar -L '<its authorize_url>'   (the consent is bound to that cookie jar)")
            click.echo("test event     .venv/bin/zixly dev send-webhook xero invoice.paid   (the simulated Xero "
                       "pays an invoice and sends the signed webhook)")
        click.echo(f"console        {base}/console  — one-time sign-in links (`zixly console link` makes more):")
        click.echo(f"  demo admin   {base}{dev_links.issue(tenant='demo', role='ADMIN')}")
        click.echo(f"  staff        {base}{dev_links.issue(staff=True)}")
        click.echo("=" * 72 + "\nCtrl-C stops everything.\n")
        while services.running():
            time.sleep(0.5)
        click.echo("a child process exited; shutting down", err=True)
        stop()
    except SystemExit:
        raise
    except BaseException as exc:  # start-up failed: leave nothing running
        dev_env.remove(home)
        services.stop()
        stack.stop()
        if isinstance(exc, StartupError):
            raise click.ClickException(str(exc))
        raise


def _bootstrap_aws() -> None:
    try:
        report = aws.bootstrap(runtime.settings(), bucket=runtime.settings().artifacts_bucket)
        click.echo(f"queues and bucket ready ({len(report.created)} created, {len(report.existing)} existing)")
    except Exception as exc:  # the API still serves; outbound deliveries and artifacts wait for it
        click.echo(f"warning: could not create the queues and bucket: {exc}", err=True)


def _dev_app_webhook_key(home: Path) -> None:
    """Xero's webhooks key for Zixly's development app, made once and kept in .zixly/: what the simulated Xero
    signs app-level deliveries with and the API verifies them with (HubSpot and Shopify sign with the app's
    client secret: devstack.simulators). Without one, every app-level webhook would be refused."""
    key_file = home / "xero-webhook-key"
    if os.environ.get("ZIXLY_XERO_APP_WEBHOOK_SECRETS"):
        return
    if not key_file.exists():
        key_file.write_text(base64.b64encode(secrets.token_bytes(48)).decode() + "\n")
        key_file.chmod(0o600)
    os.environ["ZIXLY_XERO_APP_WEBHOOK_SECRETS"] = key_file.read_text().strip()


@dev.command("send-webhook")
@click.argument("provider")
@click.argument("event")
@click.option("--tenant", "tenant_slug", default="demo", show_default=True, help="The tenant whose connection gets it.")
@click.option("--connection", "connection_id", default=None, help="Which connection (default: the first active one).")
@click.option("--resource", "resource_id", default=None, help="Which record (an invoice id, a deal id …).")
def send_webhook(provider, event, tenant_slug, connection_id, resource_id):
    """Make the running simulator emit EVENT at PROVIDER and send Zixly the signed webhook, e.g.
    `zixly dev send-webhook xero invoice.paid` (events: xero invoice.paid, hubspot deal.won,
    shopify orders/create, asana task.completed, salesforce invoice.paid).
    Reads the URLs of the running `zixly dev` from .zixly/ (the environment wins)."""
    if not dev_env.load(common.home()):
        raise click.ClickException("no running `zixly dev` found in ZIXLY_HOME (start it with `make run`)")
    common.boot()
    try:
        result = test_events.send_test_event(provider, event, tenant_slug=tenant_slug, connection_id=connection_id,
                                             resource_id=resource_id)
    except (Invalid, NotFound, Conflict, Unavailable, UpstreamFailed) as exc:
        raise click.ClickException(str(exc))
    click.echo(json.dumps(result, indent=2, default=str))
    if not result["delivered"]:
        raise click.ClickException(f"Zixly answered {result['status']}")


def _dev_data_key(home: Path) -> None:
    """A local data key for sealing secrets, made once and kept in .zixly/ (production: env or Secrets Manager)."""
    key_file = home / "data-keys"
    if os.environ.get("ZIXLY_DATA_KEYS") or key_file.exists():
        return
    key_file.write_text(f"dev1:{generate_key()}\n")
    key_file.chmod(0o600)


def _dev_console_settings(home: Path) -> None:
    """The console over plain http on loopback: one-time sign-in links, cookies without `Secure`, and a
    session-signing key made once and kept in .zixly/ (production: ZIXLY_CONSOLE_SECRET_KEY)."""
    os.environ.setdefault("ZIXLY_CONSOLE_DEV_LOGIN", "1")
    os.environ.setdefault("ZIXLY_CONSOLE_COOKIE_SECURE", "false")
    key_file = home / "console-secret"
    if not os.environ.get("ZIXLY_CONSOLE_SECRET_KEY") and not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(48) + "\n")
        key_file.chmod(0o600)


def _prepare_database() -> None:
    result = upgrade_fleet(get_router())
    click.echo(f"catalog migrated; tenants: {len(result.migrated)} migrated, {len(result.failed)} failed")
    svc.refill_schema_pool()  # before the worker starts, so its first beat finds the pool full


def _demo_tenant_key(home: Path) -> str:
    """Create the demo tenant once; keep its key in .zixly/ so a second run prints the same one."""
    key_file = home / "demo-api-key"
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
