"""Render the OpenAPI spec from the code (no database needed): `zixly openapi` and the drift test use it."""
from __future__ import annotations

import json

from core.config import Settings

_OFFLINE = Settings(database_url="postgresql+psycopg://spec@127.0.0.1:1/spec", redis_url="redis://127.0.0.1:1/0")


def render_spec() -> str:
    from api.app import create_app

    app = create_app(_OFFLINE, offline=True)
    with app.app_context():
        spec = app.extensions["flask-smorest"]["apis"][""]["ext_obj"].spec.to_dict()
    return json.dumps(spec, indent=2, sort_keys=True) + "\n"
