"""The console's own error pages: HTML, never a stack trace; the API keeps its problem+json.

Invariant: an error raised by a console view, and a 404/405 for a URL under /console, is answered with the
console's error page and the right status; a domain error a service raised maps to the same status the API
gives it (api.app.DOMAIN_ERRORS). Anything unexpected is logged with the request id and shown as a 500 page.
"""
from __future__ import annotations

import logging

from flask import Flask, g, request
from sqlalchemy.exc import InterfaceError, OperationalError
from werkzeug.exceptions import HTTPException

from api.app import DOMAIN_ERRORS
from console.pages import render
from console.sessions import ConsoleNotConfigured

log = logging.getLogger("zixly.console")
TITLES = {400: "Bad request", 401: "Please sign in", 403: "Not allowed", 404: "Not found",
          405: "Not allowed", 409: "Conflict", 410: "Gone", 422: "Invalid input", 500: "Something went wrong",
          502: "A provider did not answer", 503: "Temporarily unavailable"}


def is_console_path() -> bool:
    return request.path == "/console" or request.path.startswith("/console/")


def page(status: int, detail: str):
    return render("error.html", status=status, code=status, title=TITLES.get(status, "Error"), detail=detail,
                  request_id=g.get("request_id"))


def _status_of(exc: Exception) -> int | None:
    for exc_type, status in DOMAIN_ERRORS.items():
        if isinstance(exc, exc_type):
            return status
    return None


def handle(exc: Exception):
    if isinstance(exc, HTTPException):
        return page(exc.code or 500, exc.description or "")
    status = _status_of(exc)
    if status is not None and status != 500:
        return page(status, str(exc))
    if isinstance(exc, ConsoleNotConfigured):
        return page(503, str(exc))
    if isinstance(exc, OperationalError | InterfaceError):
        return page(503, "The database is not available right now; nothing was changed. Try again shortly.")
    log.exception("unhandled console error on %s %s", request.method, request.path)
    return page(500, "An unexpected error occurred; it has been logged.")


def register(app: Flask) -> None:
    """The console's pages for routing errors under /console (the blueprints' own handlers take the rest)."""
    # routing errors (an unknown URL under /console) reach the app's handler, not a blueprint's
    api_http_handler = app.error_handler_spec[None][None][HTTPException]

    def http_error(exc: HTTPException):
        return handle(exc) if is_console_path() else api_http_handler(exc)

    app.register_error_handler(HTTPException, http_error)
