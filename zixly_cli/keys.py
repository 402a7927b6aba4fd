"""`zixly keys …`: the data keys that seal OAuth tokens and webhook secrets (make a new one; re-seal every
tenant's secrets under the primary one)."""
from __future__ import annotations

import sys
import time

import click

from core.connections.key_rotation import rotate_data_keys
from core.platform.crypto import generate_key
from tenancy.db import catalog_session
from tenancy.models import Tenant
from zixly_cli import common


@click.group()
def keys():
    """Data keys sealing tokens and webhook secrets."""


@keys.command("generate")
@click.option("--id", "kid", default=lambda: time.strftime("k%Y%m%d"), show_default="k<today>")
def keys_generate(kid):
    """Print a new data key entry for ZIXLY_DATA_KEYS (put it first to make it the primary)."""
    click.echo(f"{kid}:{generate_key()}")


@keys.command("rotate")
def keys_rotate():
    """Re-seal every tenant's secrets under the primary data key (the first of ZIXLY_DATA_KEYS).
    Safe to run while serving: old keys keep working until this finishes and they are removed."""
    common.boot()
    with catalog_session() as session:
        total = session.query(Tenant).filter(Tenant.status.in_(("active", "suspended"))).count()
    with click.progressbar(length=total, label="re-sealing tenants", show_pos=True) as bar:
        summary = rotate_data_keys(progress=lambda slug: bar.update(1))
    click.echo(f"{summary['tenants']} tenant(s), {summary['connections_resealed']} connection(s) and "
               f"{summary['subscriptions_resealed']} subscription(s) re-sealed")
    for slug, error in summary["failed"].items():
        click.echo(f"FAILED {slug}: {error}", err=True)
    if summary["failed"]:
        sys.exit(1)
