"""`zixly shards …`: the PostgreSQL servers that hold tenant schemas (list, add, open or close to new tenants,
and make a Citus shard's schemas distributed)."""
from __future__ import annotations

import click
from sqlalchemy import select

from tenancy import citus
from tenancy.models import Tenant
from tenancy.shards import ShardError, add_shard, list_shards, set_accepting
from zixly_cli import common


@click.group("shards")
def shards():
    """PostgreSQL servers that hold tenant schemas."""


@shards.command("list")
def shards_list():
    """Shards with their tenant and pool counts."""
    for s in list_shards(common.router()):
        flags = ("default " if s["default"] else "") + ("accepting" if s["accepting"] else "closed")
        click.echo(f"{s['name']:20} {s['tenants']:>7} tenants {s['pooled']:>5} pooled  {flags:18} {s['dsn']}")


@shards.command("add")
@click.argument("name")
@click.option("--dsn", required=True, help="A database URL, or env:NAME to read it from that variable.")
@click.option("--closed", is_flag=True, help="Register it without placing new tenants on it.")
def shards_add(name, dsn, closed):
    """Register a PostgreSQL server (connected to once to check it)."""
    try:
        add_shard(common.router(), name, dsn, accepting=not closed)
    except ShardError as exc:
        raise click.ClickException(str(exc))
    click.echo(f"shard {name} added{' (closed)' if closed else ''}")


@shards.command("accept")
@click.argument("name")
@click.option("--no", "refuse", is_flag=True, help="Stop placing new tenants on this shard.")
def shards_accept(name, refuse):
    """Let the placement policy put new tenants on this shard (or stop it with --no)."""
    try:
        set_accepting(common.router(), name, not refuse)
    except ShardError as exc:
        raise click.ClickException(str(exc))
    click.echo(f"shard {name} {'closed to' if refuse else 'accepting'} new tenants")


@shards.command("distribute")
@click.argument("name")
def shards_distribute(name):
    """On a Citus shard, make its existing tenant schemas distributed schemas."""
    router = common.router()
    with router.catalog_session() as session:
        names = list(session.scalars(select(Tenant.schema_name).where(Tenant.shard == name,
                                                                      Tenant.status.in_(("active", "suspended")))))
    with router.shard_engine(name).begin() as conn:
        issued = citus.distribute_existing(conn, names)
    if not issued and names:
        raise click.ClickException(f"shard {name} has no Citus >= {'.'.join(map(str, citus.MIN_VERSION))}")
    click.echo(f"{len(issued)} schema(s) distributed")
