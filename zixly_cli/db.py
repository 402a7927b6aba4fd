"""`zixly db …`: migrate the catalog and every tenant schema (in parallel, resumably), report the fleet's
revisions, and top up the pool of ready tenant schemas.

Long operations show a progress bar on stderr and end with a summary.
"""
from __future__ import annotations

import sys
from contextlib import ExitStack

import click

from core.platform import runtime
from tenancy import pool
from tenancy.fleet import FleetBusy, fleet_status, upgrade_fleet
from zixly_cli import common


@click.group()
def db():
    """Database migrations."""


@db.command("upgrade")
@click.option("--jobs", "-j", default=4, show_default=True, type=click.IntRange(1, 64),
              help="Tenants migrated at once (each on its own connection to its shard).")
@click.option("--lock-timeout", default="5s", show_default=True, callback=common.lock_timeout,
              help="Give up on a tenant whose tables stay locked this long (it is quarantined, the rest go on).")
@click.option("--skip-quarantined", is_flag=True, help="Leave tenants quarantined by an earlier run alone.")
def db_upgrade(jobs, lock_timeout, skip_quarantined):
    """Migrate the catalog, then every tenant schema behind the head, in parallel, resumably.

    Exits 1 naming the tenants that failed (they are quarantined; a later run retries them last).
    """
    router = common.router()
    with ExitStack() as stack:
        bar = {}

        def on_start(total):
            if total:
                bar["b"] = stack.enter_context(click.progressbar(
                    length=total, label=f"migrating {total} tenant(s), {jobs} at a time", file=sys.stderr,
                    show_pos=True, show_eta=True))

        def on_tenant(slug):
            bar["b"].update(1)

        try:
            result = upgrade_fleet(router, jobs=jobs, lock_timeout=lock_timeout, skip_quarantined=skip_quarantined,
                                   on_start=on_start, on_tenant=on_tenant)
        except FleetBusy as exc:
            raise click.ClickException(str(exc))
    if result.noop:
        click.echo(f"nothing to do: catalog and every tenant at head {result.head} "
                   f"(one catalog query, {result.elapsed * 1000:.0f} ms)")
        return
    rate = result.total / result.elapsed if result.elapsed else 0
    click.echo(f"tenant head {result.head}: {len(result.migrated)} migrated, {len(result.recorded)} already there "
               f"(recorded), {len(result.failed)} failed, {len(result.skipped)} quarantined and skipped"
               f"{'; catalog migrated' if result.catalog_upgraded else ''} — {result.elapsed:.1f} s"
               f" ({rate:.0f} tenants/s)")
    for slug, reason in result.failed.items():
        click.echo(f"  FAILED {slug} (quarantined): {reason}", err=True)
    for slug in result.skipped:
        click.echo(f"  SKIPPED {slug} (quarantined earlier; run without --skip-quarantined to retry)", err=True)
    if not result.ok:
        sys.exit(1)


@db.command("status")
def db_status():
    """How many tenants are at each revision (per shard), and which are quarantined."""
    router = common.router()
    status = fleet_status(router)
    catalog_note = "" if status["catalog_revision"] == status["catalog_head"] else \
        f"  (BEHIND: head is {status['catalog_head']}; run `zixly db upgrade`)"
    click.echo(f"catalog revision {status['catalog_revision']}{catalog_note}")
    click.echo(f"tenant head      {status['head']}")
    for revision, n in sorted(status["by_revision"].items(), key=lambda kv: -kv[1]):
        mark = "head" if revision == status["head"] else "behind"
        click.echo(f"  {revision or '-':12} {n:>8} tenant(s)   {mark}")
    for shard, revision, n in status["by_shard"]:
        click.echo(f"  shard {shard:16} {revision or '-':12} {n:>8}")
    for name, n in status["other_statuses"].items():
        click.echo(f"  ({n} {name}, not migrated)")
    for (shard, revision), n in sorted(pool.counts(router).items()):
        click.echo(f"  pool on {shard:14} {revision:12} {n:>8} ready schema(s)")
    for slug, revision, error in status["quarantined"]:
        click.echo(f"QUARANTINED {slug} at {revision}: {error}")
    if status["quarantined"] or any(r != status["head"] for r in status["by_revision"]):
        sys.exit(1)


@db.command("pool")
@click.option("--size", type=click.IntRange(0, 100_000), default=None,
              help="Ready schemas per shard (default ZIXLY_SCHEMA_POOL_SIZE).")
@click.option("--shard", default=None, help="Only this shard.")
@click.option("--jobs", "-j", default=2, show_default=True, type=click.IntRange(1, 32))
def db_pool(size, shard, jobs):
    """Top up the pool of ready tenant schemas (what makes provisioning a rename)."""
    router = common.router()
    target = runtime.settings().schema_pool_size if size is None else size
    with click.progressbar(length=0, label=f"creating pooled schemas (target {target} per shard)",
                           file=sys.stderr, show_pos=True) as bar:
        created = pool.refill(router, target=target, shard=shard, jobs=jobs, on_created=lambda s: bar.update(1))
    for name, n in created.items():
        click.echo(f"shard {name}: {n} created")
    for (name, revision), n in sorted(pool.counts(router).items()):
        click.echo(f"  pool on {name:14} {revision:12} {n:>6} ready")
