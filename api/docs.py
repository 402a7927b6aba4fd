"""The contract, served: `/openapi.json` and `/docs` (Swagger UI from files shipped in this package, no CDN).

The page loads nothing from elsewhere and runs no inline code, so it works offline and under a strict CSP.
"""
from __future__ import annotations

import json

from flask import Blueprint, current_app, url_for
from markupsafe import escape

from api.auth import PUBLIC, PUBLIC_ENDPOINTS, access
from api.openapi import contract

blp = Blueprint("docs", __name__, static_folder="static/swagger-ui", static_url_path="/docs/assets")
PUBLIC_ENDPOINTS.add("docs.static")

CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "font-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title} reference</title>
<link rel="stylesheet" href="{css}">
<link rel="stylesheet" href="{own_css}">
<link rel="icon" type="image/png" href="{icon}">
</head>
<body>
<div id="swagger-ui" data-spec-url="{spec}"></div>
<script src="{js}"></script>
<script src="{own_js}"></script>
</body>
</html>
"""


@blp.route("/openapi.json")
@access(PUBLIC)
def openapi_json():
    """The OpenAPI spec (the same document as openapi/openapi.yaml)."""
    return current_app.response_class(json.dumps(contract(current_app)), mimetype="application/json")


@blp.route("/docs")
@access(PUBLIC)
def docs():
    """The interactive API reference."""
    def asset(name):
        return escape(url_for("docs.static", filename=name))

    page = _PAGE.format(title=escape(contract(current_app)["info"]["title"]), spec=escape(url_for("docs.openapi_json")),
                        css=asset("swagger-ui.css"), own_css=asset("zixly-docs.css"),
                        icon=asset("favicon-32x32.png"), js=asset("swagger-ui-bundle.js"),
                        own_js=asset("zixly-docs.js"))
    return current_app.response_class(page, mimetype="text/html")


@blp.after_request
def _strict_headers(response):
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cross-Origin-Resource-Policy"] = "same-origin"
    return response
