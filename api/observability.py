"""HTTP metrics (prometheus-flask-exporter), the /metrics endpoint, and one structured log line per request.

/metrics needs the metrics token; without one configured it is refused unless `metrics_public` says it may be
served to anyone (its labels name tenants, so public is an explicit choice, never a default)."""
from __future__ import annotations

import logging
import time

from flask import Flask, Response, g, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_flask_exporter import PrometheusMetrics

from api import auth, operators
from api.problems import Problem
from core.platform import logs, metrics

log = logging.getLogger("zixly.http")
_HOOKS = ("before_request", "after_request", "teardown_request")
# prometheus-flask-exporter exports its default metrics once per registry and hooks them into the first app only:
# every later app of the process (tests make several) gets the same hooks, so each app's requests are counted.
_http: tuple[PrometheusMetrics, list] | None = None


def _track_requests(app: Flask) -> PrometheusMetrics:
    global _http
    if _http is None:
        funcs = {kind: getattr(app, f"{kind}_funcs") for kind in _HOOKS}
        known = {kind: list(funcs[kind].get(None, [])) for kind in _HOOKS}
        exporter = PrometheusMetrics(app, path=None, group_by="url_rule", defaults_prefix="flask",
                                     excluded_paths=["^/metrics$"])
        _http = exporter, [(kind, f) for kind in _HOOKS for f in funcs[kind].get(None, []) if f not in known[kind]]
    else:
        for kind, hook in _http[1]:
            getattr(app, kind)(hook)
    return _http[0]


def init_app(app: Flask, *, metrics_token: str | None = None, metrics_public: bool = False) -> PrometheusMetrics:
    exporter = track_requests(app)

    def scrape():
        if metrics_token:
            if not operators.holds_metrics_token(metrics_token):
                raise Problem(401, "unauthorized", "Send the metrics token as a Bearer token.",
                              headers={"WWW-Authenticate": 'Bearer realm="zixly-metrics"'})
        elif not metrics_public:
            raise Problem(403, "metrics-not-public", "Metrics are served only with a token: set "
                          "ZIXLY_METRICS_TOKEN (or ZIXLY_METRICS_PUBLIC=true for a local, private setup).",
                          title="Forbidden")
        return Response(generate_latest(metrics.registry_for_scrape()), mimetype=CONTENT_TYPE_LATEST)

    app.add_url_rule("/metrics", "metrics", scrape, methods=["GET"])
    auth.PUBLIC_ENDPOINTS.add("metrics")
    return exporter


def track_requests(app: Flask) -> PrometheusMetrics:
    """The HTTP metrics (flask_http_request_*, which the alerts use) and one JSON log line per request."""
    exporter = _track_requests(app)

    def _start():
        g.started = time.perf_counter()

    # first of all before-request hooks: a request refused by an earlier one (bad credentials) still has its time
    app.before_request_funcs.setdefault(None, []).insert(0, _start)

    @app.after_request
    def _log(response):
        rule = request.url_rule.rule if request.url_rule is not None else None
        if rule != "/metrics":
            log.info("%s %s %s", request.method, rule or "<no route>", response.status_code,
                     extra={"event": "request", "method": request.method, "route": rule,
                            "status": response.status_code,
                            "duration_ms": round((time.perf_counter() - g.get("started", time.perf_counter()))
                                                 * 1000, 2)})
        return response

    @app.teardown_request
    def _clear(_exc=None):
        logs.request_id_var.set(None)

    return exporter
