"""The root of the `zixly` command: `main` (the console script) with every command group added.

The groups live in their own modules and never import this one.
"""
from __future__ import annotations

import click

from zixly_cli.auth import auth
from zixly_cli.aws import aws
from zixly_cli.console import console
from zixly_cli.db import db
from zixly_cli.dev import dev
from zixly_cli.keys import keys
from zixly_cli.inbox import inbox
from zixly_cli.openapi import openapi
from zixly_cli.outbound import outbound
from zixly_cli.shards import shards
from zixly_cli.tenants import tenants
from zixly_cli.workers import beat, worker


@click.group()
def main():
    """Zixly: multi-tenant integration API."""


for command in (tenants, db, shards, auth, keys, openapi, worker, beat, outbound, inbox, aws, dev, console):
    main.add_command(command)

if __name__ == "__main__":
    main()
