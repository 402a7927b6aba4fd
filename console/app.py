"""The whole site: the API (api.app.create_app) with the console mounted under /console.

`/` and `/login` lead to the console. The console's blueprints authenticate their own callers (sessions), so
the API's credential checks skip them (api.auth.SELF_AUTHENTICATED_BLUEPRINTS).
"""
from __future__ import annotations

from flask import Flask, redirect, url_for

from api import auth as api_auth
from api.app import create_app as create_api_app
from console import blueprints, errors, headers
from console.views import (  # noqa: F401 (their routes)
    activity,
    auth,
    connections,
    jobs,
    keys,
    notifications,
    overview,
    records,
    staff,
    workflows,
)
from core.platform.config import Settings

ROOT_ENDPOINTS = ("console_root", "console_login_shortcut")


def create_app(settings: Settings | None = None) -> Flask:
    app = create_api_app(settings)
    app.config["CONSENT_RETURN_PATH"] = connections.RETURN_PATH  # where a failed console consent lands
    for blp in blueprints.ALL:
        api_auth.SELF_AUTHENTICATED_BLUEPRINTS.add(blp.name)
        app.register_blueprint(blp)
    app.add_url_rule("/", "console_root", lambda: redirect(url_for("console_auth.home")))
    app.add_url_rule("/login", "console_login_shortcut", lambda: redirect(url_for("console_auth.login")))
    api_auth.PUBLIC_ENDPOINTS.update(ROOT_ENDPOINTS)
    errors.register(app)
    headers.init_app(app)
    return app
