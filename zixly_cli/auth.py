"""`zixly auth token`: bearer JWTs minted with the local development signing key (which `zixly dev` creates)."""
from __future__ import annotations

import os
from pathlib import Path

import click

from api.tokens import mint
from zixly_cli import common
from zixly_cli.common import jwt_audience


@click.group()
def auth():
    """Development tokens."""


@auth.command("token")
@click.option("--staff", is_flag=True, help="A staff token.")
@click.option("--tenant", default=None, help="Tenant slug for a tenant user token.")
@click.option("--role", type=click.Choice(["ADMIN", "EDITOR", "VIEWER"]), default="ADMIN", show_default=True)
@click.option("--subject", default=None, help="The `sub` claim (defaults to dev-staff / dev-user).")
@click.option("--ttl", default=3600, show_default=True, help="Lifetime in seconds.")
def auth_token(staff, tenant, role, subject, ttl):
    """Mint a bearer JWT with the local development key."""
    if staff == bool(tenant):
        raise click.UsageError("give exactly one of --staff or --tenant SLUG")
    key = Path(os.environ.get("ZIXLY_JWT_PRIVATE_KEY_FILE", common.home() / "jwt-private.pem"))
    if not key.exists():
        raise click.ClickException(f"no signing key at {key}: run `make run` once, or set ZIXLY_JWT_PRIVATE_KEY_FILE")
    click.echo(mint(key, issuer=os.environ.get("ZIXLY_JWT_ISSUER", "zixly-dev"),
                    audience=jwt_audience(staff),
                    subject=subject or ("dev-staff" if staff else "dev-user"), staff=staff, tenant=tenant,
                    role=None if staff else role, ttl=ttl))
