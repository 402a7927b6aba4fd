"""The hook path: `POST /v1/hooks/…` served by a Flask app of its own, with only what a webhook needs.

Measured per webhook (bench.hook_profile), the API's stack — authentication and body checks, the plan limits,
the failed-credential budget, flask-smorest's documentation machinery, the docs blueprint — was most of the
Python a webhook ran, and a webhook uses none of it: it is public and authenticated by its provider's
signature. This app keeps what the hook does need: the same views (api/resources/hooks.py, registered here as
plain Flask routes, so the endpoints keep their names), the same configuration object as the API (one source),
the request id, the HTTP metrics and log line the alerts and dashboards use, the webhook budget per endpoint
token, and every error as problem+json through the API's own handlers. The API app still registers the hooks
blueprint, so the OpenAPI spec documents them, and answers every other method on those paths.
"""
from __future__ import annotations

from collections.abc import Callable

from flask import Flask, g

from api import auth, limits, observability
from api.flask_app import ZixlyFlask
from api.resources import hooks
from core.platform.config import Settings

HOOK_PREFIX, APP_HOOK_PREFIX = "/v1/hooks/", "/v1/hooks/apps/"


def create_hook_app(settings: Settings, config, register_errors: Callable[[Flask], None], *,
                    budgeted: bool) -> Flask:
    """`budgeted`: with the webhook budget per endpoint token (connection hooks); the app-level hooks have none
    (api/limits.py: HOOK_ENDPOINTS), so their app has no limiter at all."""
    app = ZixlyFlask("zixly-hooks")
    app.config = config  # the API's: MAX_CONTENT_LENGTH, PUBLIC_BASE_URL … (one configuration, three apps)
    app.before_request(auth.assign_request_id)
    app.after_request(_request_id_header)
    observability.track_requests(app)
    if budgeted:
        app.extensions["zixly_hook_limiter"] = limits.init_hook_limiter(
            app, redis_url=settings.redis_url, fail_open=settings.rate_limit_fail_open,
            webhook_limit=settings.webhook_rate_limit)
    app.register_blueprint(hooks.blp)
    register_errors(app)
    return app


def _request_id_header(response):
    response.headers["X-Request-ID"] = getattr(g, "request_id", "")
    return response


class HookDispatch:
    """WSGI: a POST under /v1/hooks/apps/ goes to the app-level hook app, another POST under /v1/hooks/ to the
    connection hook app (with the budget), everything else to the API."""

    def __init__(self, settings: Settings, config, register_errors: Callable[[Flask], None], api: Callable):
        self.app_hooks = create_hook_app(settings, config, register_errors, budgeted=False)
        self.connection_hooks = create_hook_app(settings, config, register_errors, budgeted=True)
        self.api = api

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if environ.get("REQUEST_METHOD") == "POST" and path.startswith(HOOK_PREFIX):
            hooks_app = self.app_hooks if path.startswith(APP_HOOK_PREFIX) else self.connection_hooks
            return hooks_app(environ, start_response)
        return self.api(environ, start_response)
