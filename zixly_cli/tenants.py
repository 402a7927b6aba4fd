"""`zixly tenants …`: provision tenants, list them, change their lifecycle, and move them between shards.

Long operations show a progress bar on stderr and end with a summary.
"""
from __future__ import annotations

import sys
from pathlib import Path

import click

from core.lifecycle import erase, export
from core.platform.actors import Actor
from core.tenants import service as svc
from tenancy.provisioning import InvalidTransition, TenantNotFound
from tenancy.shards import ShardError, drop_leftovers
from zixly_cli import common


@click.group()
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
    common.boot()
    tenant, key, secret = svc.create_tenant(slug=slug, name=name or slug, plan=plan, admin_email=admin_email,
                                            shard=shard, actor=Actor("staff", "cli"))
    click.echo(f"tenant {tenant.slug} is {tenant.status} on shard {tenant.shard} (schema {tenant.schema_name})")
    click.echo(f"ADMIN API key (shown once): {secret}")


@tenants.command("list")
@click.option("--status", default=None)
def tenants_list(status):
    """List tenants."""
    common.boot()
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
        common.boot()
        tenant = call(slug, Actor("staff", "cli"))
        click.echo(f"tenant {tenant.slug} is {tenant.status}")

    return command


_lifecycle("suspend", "Suspend a tenant.", lambda s, a: svc.update_tenant(s, actor=a, status="suspended"))
_lifecycle("resume", "Resume a suspended tenant.", lambda s, a: svc.update_tenant(s, actor=a, status="active"))
_lifecycle("archive", "Archive a tenant (schema kept).", lambda s, a: svc.archive_tenant(s, actor=a))
_lifecycle("restore", "Restore an archived tenant.", lambda s, a: svc.restore_tenant(s, actor=a))


@tenants.command("move")
@click.argument("slug")
@click.option("--to", "to_shard", default=None, help="The shard to move the tenant to.")
@click.option("--undo", is_flag=True, help="Move the tenant back to where its last move took it from.")
@click.option("--lock-timeout", default="10s", show_default=True, callback=common.lock_timeout)
def tenants_move(slug, to_shard, undo, lock_timeout):
    """Move a tenant to another shard: suspend, copy, verify, switch, resume (old copy kept)."""
    if bool(to_shard) == undo:
        raise click.UsageError("give exactly one of --to SHARD or --undo")
    common.router()  # boots the runtime the service uses
    with click.progressbar(length=0, label=f"moving {slug}", file=sys.stderr, show_pos=True) as bar:
        try:
            move = svc.move_tenant(slug, to_shard=to_shard, undo=undo, actor=Actor("staff", "cli"),
                                   lock_timeout=lock_timeout, on_step=lambda label: click.echo(f"  {label}", err=True),
                                   on_table=lambda table: bar.update(1))
        except ShardError as exc:
            raise click.ClickException(str(exc))
    rows = sum((move.row_counts or {}).values())
    click.echo(f"tenant {slug} moved {move.from_shard} -> {move.to_shard}: {rows} rows in "
               f"{len(move.row_counts or {})} tables verified; old copy {move.leftover_schema} kept on "
               f"{move.from_shard} (undo: zixly tenants move {slug} --undo; drop: zixly tenants move-cleanup {slug})")


@tenants.command("move-cleanup")
@click.argument("slug")
def tenants_move_cleanup(slug):
    """Drop the old copies kept by a tenant's finished moves."""
    try:
        dropped = drop_leftovers(common.router(), slug)
    except ShardError as exc:
        raise click.ClickException(str(exc))
    click.echo(f"dropped {len(dropped)} old copie(s): {', '.join(dropped) or '-'}")


def _progress_bar(label: str):
    return click.progressbar(length=0, label=label, file=sys.stderr, show_pos=True)


@tenants.command("export")
@click.argument("slug")
@click.option("--out", "out", type=click.Path(dir_okay=False, writable=True), default=None,
              help="The archive to write (default: SLUG-export.tar.gz here).")
def tenants_export(slug, out):
    """Export a tenant's data to one archive: JSON lines per table and its S3 objects (audited)."""
    common.boot()
    destination = Path(out or f"{slug}-export.tar.gz")
    with _progress_bar(f"exporting {slug}") as bar:
        try:
            report = export.export_tenant(slug, destination=destination, actor=Actor("staff", "cli"),
                                          progress=lambda what, n: bar.update(n))
        except TenantNotFound as exc:
            raise click.ClickException(str(exc))
    click.echo(f"wrote {report.path}: {sum(report.rows.values())} rows in {len(report.rows)} tables, "
               f"{report.objects} S3 object(s)")


@tenants.command("erase")
@click.argument("slug")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def tenants_erase(slug, yes):
    """Erase a suspended or archived tenant for good: schema, S3 objects, Redis keys, catalog records; a
    tombstone stays (audited)."""
    common.boot()
    if not yes:
        click.confirm(f"erase every piece of data of tenant {slug}? This cannot be undone", abort=True)
    with _progress_bar(f"erasing {slug}") as bar:
        try:
            report = erase.erase_tenant(slug, actor=Actor("staff", "cli"), progress=lambda what, n: bar.update(n))
        except (TenantNotFound, InvalidTransition) as exc:
            raise click.ClickException(str(exc))
    click.echo(f"tenant {slug} erased: {len(report.schemas)} schema(s), {report.objects} S3 object version(s), "
               f"{report.redis_keys} Redis key(s), {report.catalog_rows} catalog row(s); tombstone kept")
