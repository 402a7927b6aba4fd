"""Security headers on every answer under /console (its error pages included).

Scripts only from the console itself (htmx is vendored), never inside a frame (clickjacking); the style
attribute is allowed (bars in the overview, htmx's indicator styles). No form-action: the connect form's answer
redirects to the provider's consent page, which form-action would block. Pages may show a secret once, so HTML is
never kept by a cache.
"""
from __future__ import annotations

from flask import Flask

from console.errors import is_console_path

CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                           "img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")


def add(response):
    if not is_console_path():
        return response
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if response.mimetype == "text/html":
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def init_app(app: Flask) -> None:
    app.after_request(add)
