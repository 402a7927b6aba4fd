"""Render the OpenAPI spec from the code (no database needed): `zixly openapi write` and the drift test use it."""
from __future__ import annotations

from pathlib import Path

import yaml

from api.app import create_app
from api.openapi import contract
from core.platform.config import Settings

_OFFLINE = Settings(database_url="postgresql+psycopg://spec@127.0.0.1:1/spec", redis_url="redis://127.0.0.1:1/0")
SPEC_FILE = Path("openapi") / "openapi.yaml"
REGENERATE = "make spec"  # what to run when the committed spec and the code differ


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data):  # a value used twice is written twice, never as an anchor
        return True


def _text(dumper, value: str):  # multi-line descriptions as readable blocks
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_Dumper.add_representer(str, _text)


def build_spec() -> dict:
    return contract(create_app(_OFFLINE, offline=True))


def render_spec() -> str:
    return "# Generated from the code by `zixly openapi write` (make spec); do not edit by hand.\n" + yaml.dump(
        build_spec(), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120)
