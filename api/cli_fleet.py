"""Fleet commands of `zixly`: `db upgrade|status|pool`, `shards …`, `tenants move|move-cleanup`.

Registered on the groups of api/cli.py; long operations show a progress bar on stderr and end with a summary.
"""
from __future__ import annotations

import re
import sys
from contextlib import ExitStack

import click

LOCK_TIMEOUT = re.compile(r"^\d+(ms|s|min)?$")


def _router():
    from core.platform import runtime
    from core.platform.config import Settings
    from tenancy.db import get_router

    runtime.init(Settings.from_env())
    return get_router()


def _lock_timeout(ctx, param, value):
    if not LOCK_TIMEOUT.match(value):
        raise click.BadParameter("use a PostgreSQL duration such as 500ms, 5s or 1min")
    return value


# --- db ------------------------------------------------------------------------------------------------
@click.command("upgrade")
@click.option("--jobs", "-j", default=4, show_default=True, type=click.IntRange(1, 64),
              help="Tenants migrated at once (each on its own connection to its shard).")
@click.option("--lock-timeout", default="5s", show_default=True, callback=_lock_timeout,
              help="Give up on a tenant whose tables stay locked this long (it is quarantined, the rest go on).")
@click.option("--skip-quarantined", is_flag=True, help="Leave tenants quarantined by an earlier run alone.")
def db_upgrade(jobs, lock_timeout, skip_quarantined):
    """Migrate the catalog, then every tenant schema behind the head, in parallel, resumably.

    Exits 1 naming the tenants that failed (they are quarantined; a later run retries them last).
    """
    from tenancy.fleet import FleetBusy, upgrade_fleet

    router = _router()
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


@click.command("status")
def db_status():
    """How many tenants are at each revision (per shard), and which are quarantined."""
    from tenancy import pool
    from tenancy.fleet import fleet_status

    router = _router()
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


@click.command("pool")
@click.option("--size", type=click.IntRange(0, 100_000), default=None,
              help="Ready schemas per shard (default ZIXLY_SCHEMA_POOL_SIZE).")
@click.option("--shard", default=None, help="Only this shard.")
@click.option("--jobs", "-j", default=2, show_default=True, type=click.IntRange(1, 32))
def db_pool(size, shard, jobs):
    """Top up the pool of ready tenant schemas (what makes provisioning a rename)."""
    from core.platform.runtime import settings
    from tenancy import pool

    router = _router()
    target = settings().schema_pool_size if size is None else size
    with click.progressbar(length=0, label=f"creating pooled schemas (target {target} per shard)",
                           file=sys.stderr, show_pos=True) as bar:
        created = pool.refill(router, target=target, shard=shard, jobs=jobs, on_created=lambda s: bar.update(1))
    for name, n in created.items():
        click.echo(f"shard {name}: {n} created")
    for (name, revision), n in sorted(pool.counts(router).items()):
        click.echo(f"  pool on {name:14} {revision:12} {n:>6} ready")


# --- shards --------------------------------------------------------------------------------------------
@click.group("shards")
def shards():
    """PostgreSQL servers that hold tenant schemas."""


@shards.command("list")
def shards_list():
    """Shards with their tenant and pool counts."""
    from tenancy.shards import list_shards

    for s in list_shards(_router()):
        flags = ("default " if s["default"] else "") + ("accepting" if s["accepting"] else "closed")
        click.echo(f"{s['name']:20} {s['tenants']:>7} tenants {s['pooled']:>5} pooled  {flags:18} {s['dsn']}")


@shards.command("add")
@click.argument("name")
@click.option("--dsn", required=True, help="A database URL, or env:NAME to read it from that variable.")
@click.option("--closed", is_flag=True, help="Register it without placing new tenants on it.")
def shards_add(name, dsn, closed):
    """Register a PostgreSQL server (connected to once to check it)."""
    from tenancy.shards import ShardError, add_shard

    try:
        add_shard(_router(), name, dsn, accepting=not closed)
    except ShardError as exc:
        raise click.ClickException(str(exc))
    click.echo(f"shard {name} added{' (closed)' if closed else ''}")


@shards.command("accept")
@click.argument("name")
@click.option("--no", "refuse", is_flag=True, help="Stop placing new tenants on this shard.")
def shards_accept(name, refuse):
    """Let the placement policy put new tenants on this shard (or stop it with --no)."""
    from tenancy.shards import ShardError, set_accepting

    try:
        set_accepting(_router(), name, not refuse)
    except ShardError as exc:
        raise click.ClickException(str(exc))
    click.echo(f"shard {name} {'closed to' if refuse else 'accepting'} new tenants")


@shards.command("distribute")
@click.argument("name")
def shards_distribute(name):
    """On a Citus shard, make its existing tenant schemas distributed schemas."""
    from sqlalchemy import select

    from tenancy import citus
    from tenancy.models import Tenant

    router = _router()
    with router.catalog_session() as session:
        names = list(session.scalars(select(Tenant.schema_name).where(Tenant.shard == name,
                                                                      Tenant.status.in_(("active", "suspended")))))
    with router.shard_engine(name).begin() as conn:
        issued = citus.distribute_existing(conn, names)
    if not issued and names:
        raise click.ClickException(f"shard {name} has no Citus >= {'.'.join(map(str, citus.MIN_VERSION))}")
    click.echo(f"{len(issued)} schema(s) distributed")


# --- tenants move ----------------------------------------------------------------------------------------
@click.command("move")
@click.argument("slug")
@click.option("--to", "to_shard", default=None, help="The shard to move the tenant to.")
@click.option("--undo", is_flag=True, help="Move the tenant back to where its last move took it from.")
@click.option("--lock-timeout", default="10s", show_default=True, callback=_lock_timeout)
def tenants_move(slug, to_shard, undo, lock_timeout):
    """Move a tenant to another shard: suspend, copy, verify, switch, resume (old copy kept)."""
    from core.platform.actors import Actor
    from core.tenants import service as svc
    from tenancy.shards import ShardError

    if bool(to_shard) == undo:
        raise click.UsageError("give exactly one of --to SHARD or --undo")
    _router()  # boots the runtime the service uses
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


@click.command("move-cleanup")
@click.argument("slug")
def tenants_move_cleanup(slug):
    """Drop the old copies kept by a tenant's finished moves."""
    from tenancy.shards import ShardError, drop_leftovers

    try:
        dropped = drop_leftovers(_router(), slug)
    except ShardError as exc:
        raise click.ClickException(str(exc))
    click.echo(f"dropped {len(dropped)} old copie(s): {', '.join(dropped) or '-'}")


def register(main: click.Group, db: click.Group, tenants: click.Group) -> None:
    for command in (db_upgrade, db_status, db_pool):
        db.add_command(command)
    tenants.add_command(tenants_move)
    tenants.add_command(tenants_move_cleanup)
    main.add_command(shards)
