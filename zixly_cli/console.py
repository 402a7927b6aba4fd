"""`zixly console link`: a one-time sign-in link to the console, for development (ZIXLY_CONSOLE_DEV_LOGIN=1).

It reaches a running `make run` by itself (devstack.dev_env); `make run` prints one link for the demo tenant's
admin and one for staff when it starts.
"""
from __future__ import annotations

import os

import click

from console import dev_links
from devstack import dev_env
from zixly_cli import common


@click.group("console")
def console():
    """The web console."""


@console.command("link")
@click.option("--staff", is_flag=True, help="Sign in as Zixly staff instead of a tenant user.")
@click.option("--tenant", default="demo", show_default=True, help="The tenant's slug (tenant users).")
@click.option("--role", type=click.Choice(["ADMIN", "EDITOR", "VIEWER"]), default="ADMIN", show_default=True)
def link(staff, tenant, role):
    """Print a one-time sign-in link (development only)."""
    dev_env.load(common.home())  # a running `zixly dev`'s settings, unless the environment names others
    common.boot()
    base = os.environ.get("ZIXLY_PUBLIC_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
    try:
        click.echo(base + dev_links.issue(staff=staff, tenant=tenant, role=role))
    except dev_links.DevLoginDisabled as exc:
        raise click.ClickException(str(exc))
