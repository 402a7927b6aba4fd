"""`zixly openapi [write|check]`: write the OpenAPI spec generated from the code, or check the committed one."""
from __future__ import annotations

from pathlib import Path

import click

from api.spec import REGENERATE, SPEC_FILE, render_spec


@click.group("openapi", invoke_without_command=True)
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
    path = Path(output) if output else SPEC_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_spec())
    click.echo(f"wrote {path}")


@openapi.command("check")
@click.option("--spec", "spec_file", default=None, help="Default: openapi/openapi.yaml.")
def openapi_check(spec_file):
    """Exit 1 when the committed spec differs from the code."""
    path = Path(spec_file) if spec_file else SPEC_FILE
    if not path.exists() or path.read_text() != render_spec():
        raise click.ClickException(f"{path} differs from the code: run `{REGENERATE}` and commit it")
    click.echo(f"{path} matches the code")
