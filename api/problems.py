"""Every error as RFC 9457 `application/problem+json`: one builder, one set of handlers, no HTML, no traces."""
from __future__ import annotations

import logging

from flask import Flask, Response, g, json, request
from psycopg.errors import UndefinedTable
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from werkzeug.exceptions import HTTPException, MethodNotAllowed

log = logging.getLogger("zixly.api")

PROBLEM_BASE = "https://docs.zixly.io/problems/"
MEDIA_TYPE = "application/problem+json"


class Problem(Exception):
    """Raise from anywhere in a request to answer with a problem document."""

    def __init__(self, status: int, code: str, detail: str, *, title: str | None = None,
                 headers: dict | None = None, **extra):
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail
        self.title = title or code.replace("-", " ").capitalize()
        self.headers, self.extra = headers or {}, extra


def _plain(value):
    """Field errors use list positions as keys next to `_schema`; JSON object keys are strings (and a sorted
    dump cannot compare 3 with "_schema")."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def problem_response(status: int, code: str, detail: str | None, *, title: str | None = None,
                     headers: dict | None = None, **extra) -> Response:
    body = {
        "type": PROBLEM_BASE + code,
        "title": title or code.replace("-", " ").capitalize(),
        "status": status,
        "detail": detail,
        "instance": request.path if request else None,
    }
    body = {k: v for k, v in body.items() if v is not None}  # members are optional; null is not a string
    request_id = getattr(g, "request_id", None)
    if request_id:
        body["request_id"] = request_id
    body.update({k: _plain(v) for k, v in extra.items() if v is not None})
    resp = Response(json.dumps(body), status=status, mimetype=MEDIA_TYPE)
    for name, value in (headers or {}).items():
        resp.headers[name] = value
    return resp


_CODES = {
    400: "bad-request", 401: "unauthorized", 403: "forbidden", 404: "not-found", 405: "method-not-allowed",
    406: "not-acceptable", 409: "conflict", 410: "gone", 413: "payload-too-large",
    415: "unsupported-media-type", 422: "validation-error", 429: "rate-limited", 500: "internal-error",
    503: "service-unavailable",
}


def _http_exception(exc: HTTPException) -> Response:
    status = exc.code or 500
    extra, detail = {}, exc.description
    data = getattr(exc, "data", None) or {}
    messages = data.get("messages") if isinstance(data, dict) else None
    if messages:  # webargs/marshmallow validation errors: {location: {field: [msg]}}
        extra["errors"] = messages
        detail = "The request has invalid fields; see `errors`."
        if status == 422 and "json" in messages and messages["json"] == {"_schema": ["Invalid input type."]}:
            detail = "The JSON body must be an object."
    if status == 400 and "Invalid JSON" in str(messages or detail):
        detail, extra = "The request body is not valid JSON.", {}
    headers = {}
    if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
        headers["Allow"] = ", ".join(sorted(exc.valid_methods))
    for name in ("Retry-After",):
        if exc.get_headers() and dict(exc.get_headers()).get(name):
            headers[name] = dict(exc.get_headers())[name]
    message = data.get("message") if isinstance(data, dict) else None
    return problem_response(status, _CODES.get(status, "error"), message or detail,
                            title=exc.name, headers=headers, **extra)


def register(app: Flask) -> None:
    @app.errorhandler(Problem)
    def _problem(exc: Problem):
        return problem_response(exc.status, exc.code, exc.detail, title=exc.title, headers=exc.headers,
                                **exc.extra)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        return _http_exception(exc)

    @app.errorhandler(DBAPIError)
    def _database(exc: DBAPIError):
        # The database unreachable, or a tenant's schema gone from the server its route pointed at (the tenant
        # moved a moment ago; routes may be up to 2 s behind, see tenancy.routecache): nothing was written, and
        # asking again shortly will work. Anything else from the database is a bug: logged, 500.
        if isinstance(exc, OperationalError | InterfaceError) or isinstance(exc.orig, UndefinedTable):
            log.warning("database not available for %s %s: %s", request.method, request.path, type(exc).__name__)
            return problem_response(503, "service-unavailable", "The database is not available right now; "
                                    "nothing was changed. Try again shortly.", headers={"Retry-After": "1"})
        return _unexpected(exc)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        return problem_response(500, "internal-error", "An unexpected error occurred; it has been logged.",
                                title="Internal Server Error")
