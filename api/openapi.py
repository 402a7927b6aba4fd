"""The public contract: the spec flask-smorest renders, completed from what each view already declares.

`complete()` reads the marks the ordinary decorators leave on an operation (`@access` → `x-zixly-access`,
`@idempotent` → `x-zixly-idempotent`, `@raw_body` → a raw request body, a `cursor` query argument → cursor
pagination) and adds what a client needs to know: security, every problem response, the rate-limit,
request-id and idempotency headers, pagination notes, an operationId, request examples, links between
operations, and tags grouped for a tenant developer with staff apart. A new endpoint is documented by the
decorators it has anyway; tests/contract/test_openapi.py fails for one that is not.
"""
from __future__ import annotations

import copy
import re

from apispec.ext.marshmallow import MarshmallowPlugin, OpenAPIConverter
from flask import Flask

from api import gunicorn_conf
from api.problems import MEDIA_TYPE
from core.events import catalogue

API_KEY, BEARER = "ApiKeyAuth", "BearerAuth"
TENANT_ROLES = ("VIEWER", "EDITOR", "ADMIN")

# Tag groups as a tenant developer looks for things; a tag not listed lands in "More" (or "Staff" when all its
# operations are staff-only), so a new blueprint needs no entry here.
TAG_GROUPS = {
    "Your tenant": ("tenant", "api_keys", "users", "notification_settings"),
    "Integrations": ("connections", "oauth", "hooks", "workflows", "subscriptions"),
    "Activity": ("jobs", "events", "deliveries", "notifications"),
    "More": (),
    "System": ("system",),
    "Staff": (),
}
TAG_NAMES = {"api_keys": "API keys", "hooks": "Webhooks in", "subscriptions": "Event subscriptions",
             "tenant": "Your tenant", "oauth": "OAuth"}

_HEADER = {"schema": {"type": "string"}}
HEADERS = {
    "X-Request-ID": {"description": "The request's id (yours if you sent a valid one); quote it to support.",
                     "required": True, "schema": {"type": "string"}},
    "RateLimit-Limit": {"description": "Requests allowed in the current window (per tenant and per key).",
                        "schema": {"type": "integer"}},
    "RateLimit-Remaining": {"description": "Requests left in the current window.", "schema": {"type": "integer"}},
    "RateLimit-Reset": {"description": "Seconds until the window resets.", "schema": {"type": "integer"}},
    "X-RateLimit-Limit": {"description": "Same as `RateLimit-Limit` (legacy name).", "schema": {"type": "integer"}},
    "X-RateLimit-Remaining": {"description": "Same as `RateLimit-Remaining` (legacy name).",
                              "schema": {"type": "integer"}},
    "X-RateLimit-Reset": {"description": "When the window resets, as a Unix time (legacy header).",
                          "schema": {"type": "integer"}},
    "Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}},
    "Idempotent-Replayed": {"description": "`true` when this is the stored answer to an earlier request with the "
                                           "same `Idempotency-Key`.", "schema": {"type": "string", "enum": ["true"]}},
    "WWW-Authenticate": {"description": "The accepted authentication schemes.", **_HEADER},
    "Allow": {"description": "The methods this path accepts.", **_HEADER},
}
RATE_LIMIT_HEADERS = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset",
                      "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")

PARAMETERS = {
    "RequestId": {"name": "X-Request-ID", "in": "header", "required": False, "schema": {"type": "string"},
                  "description": "Your id for this request: echoed back and logged when it is 1–64 characters of "
                                 "`A-Z a-z 0-9 . _ -`; otherwise a new one is assigned."},
    "IdempotencyKey": {"name": "Idempotency-Key", "in": "header", "required": False,
                       "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": r"^[ -~]+$"},
                       "example": "3f1c2a9e-5b7d-4c1e-9a7b-2d4e6f8a0b1c",
                       "description": "Makes a create safe to retry: a repeat with the same key and body within 24 h "
                                      "gets the stored answer (`Idempotent-Replayed: true`) instead of a second "
                                      "create; the same key with a different body is a 422, and a repeat while the "
                                      "first is still running is a 409 with `Retry-After`. 1–255 printable ASCII "
                                      "characters, such as a UUID."},
}

# name: (status, description, extra headers)
PROBLEMS = {
    "BadRequest": (400, "Malformed request: not valid HTTP, body not valid JSON or nested deeper than 64 "
                        "levels, a cursor this API did not issue, a bad `Idempotency-Key`, or both `X-API-Key` and "
                        "`Authorization` sent.", ()),
    "Unauthorized": (401, "No credentials, or credentials that are invalid, expired or revoked.",
                     ("WWW-Authenticate",)),
    "Forbidden": (403, "Authenticated, but not allowed: the role is too low, the tenant is suspended, or the "
                       "operation is for the other kind of caller (staff or tenant).", ()),
    "NotFound": (404, "No such resource in your tenant.", ()),
    "Conflict": (409, "The resource is not in a state that allows this, or a request with the same "
                      "`Idempotency-Key` is still running (then `Retry-After` is set).", ("Retry-After",)),
    "Gone": (410, "The tenant has been archived.", ()),
    "PayloadTooLarge": (413, "The request body is larger than the API accepts.", ()),
    "UriTooLong": (414, f"The request line (method, path and query) is longer than "
                        f"{gunicorn_conf.limit_request_line} bytes; refused by the server before the API reads it.",
                   ()),
    "UnsupportedMediaType": (415, "The body must be sent as `application/json`.", ()),
    "UnprocessableContent": (422, "The request is well-formed but invalid; `errors` names each field's problem.",
                             ()),
    "RequestHeaderFieldsTooLarge": (431, f"A request header is longer than {gunicorn_conf.limit_request_field_size} "
                                         f"bytes, or there are more than {gunicorn_conf.limit_request_fields} "
                                         "headers; refused by the server before the API reads it.", ()),
    "TooManyRequests": (429, "The tenant's or the key's request limit for the window is used up.",
                        ("Retry-After", *RATE_LIMIT_HEADERS)),
    "ServiceUnavailable": (503, "Temporarily unable to answer: the database is away, or a bearer token cannot be "
                                "verified because the identity provider's keys (JWKS) cannot be fetched right "
                                "now (an API key still works). Nothing was changed; retry after `Retry-After`.",
                           ("Retry-After",)),
    "Error": (500, "Any other error, as a problem document.", ()),
}
_BY_STATUS = {str(status): name for name, (status, _d, _h) in PROBLEMS.items() if name != "Error"}


class _Converter(OpenAPIConverter):
    def schema2jsonschema(self, schema):
        jsonschema = super().schema2jsonschema(schema)
        jsonschema.update(getattr(getattr(schema, "Meta", None), "openapi", {}))
        return jsonschema


class SchemaPlugin(MarshmallowPlugin):
    """A schema's `class Meta: openapi = {...}` adds JSON Schema keywords marshmallow cannot say by itself
    (such as `minProperties` for a rule in a `@validates_schema`), so the spec states the same rule the code checks."""

    Converter = _Converter


def _ref(kind: str, name: str) -> dict:
    return {"$ref": f"#/components/{kind}/{name}"}


def complete(spec: dict, app: Flask) -> dict:
    """The finished contract for `spec` (as `APISpec.to_dict()` gives it); the input is not changed."""
    spec = copy.deepcopy(spec)
    components = spec.setdefault("components", {})
    problem = components.get("schemas", {}).get("Problem")
    if problem is not None:
        problem["description"] = ("An error, as RFC 9457 problem details (`application/problem+json`), with "
                                  "`errors` for field problems and `request_id` to quote to support.")
    components["securitySchemes"] = {
        API_KEY: {"type": "apiKey", "in": "header", "name": "X-API-Key",
                  "description": "A tenant API key, `zx_<env>_…`; its role (ADMIN, EDITOR, VIEWER) limits what it "
                                 "may do. Create keys with `POST /v1/api-keys`. A test key (`zx_test_…`) reads "
                                 "everything and may run (and retry) the `echo` workflow, but every operation that "
                                 "changes or calls a live connection — connections, workflow settings, other "
                                 "workflows' jobs, event and delivery replays — answers 403 `test-key-not-allowed` "
                                 "and changes nothing."},
        BEARER: {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                 "description": "A JWT for a person: a tenant user (tenant and role claims) or Zixly staff."},
    }
    components["headers"] = copy.deepcopy(HEADERS)
    components["parameters"] = copy.deepcopy(PARAMETERS)
    components["responses"] = {name: _problem_response(description, headers)
                               for name, (_status, description, headers) in PROBLEMS.items()}
    spec.pop("security", None)  # each operation says its own
    endpoints = _endpoints_by_path(app)
    operation_ids: dict[str, str] = {}
    for path, item in spec.get("paths", {}).items():
        for method, op in item.items():
            if method in _METHODS:
                _operation(spec, path, item, method, op, endpoints.get(path), operation_ids)
    _event_catalogue(spec)
    _nullable_refs(spec)
    _links(spec)
    _tags(spec)
    _prune_schemas(spec)
    return _ordered(spec)


def _nullable_refs(node) -> None:
    """apispec writes a nullable nested schema as `anyOf: [$ref, {type: object, nullable: true}]`, whose second
    branch admits ANY object; say what the code accepts instead: the referenced schema, or null."""
    if isinstance(node, dict):
        any_of = node.get("anyOf")
        if (isinstance(any_of, list) and len(any_of) == 2 and "$ref" in any_of[0]
                and any_of[1] == {"type": "object", "nullable": True}):
            del node["anyOf"]
            node["allOf"], node["nullable"] = [any_of[0]], True
        for value in node.values():
            _nullable_refs(value)
    elif isinstance(node, list):
        for value in node:
            _nullable_refs(value)


_METHODS = ("get", "put", "post", "delete", "patch")


def _problem_response(description: str, headers) -> dict:
    return {"description": description,
            "headers": {name: _ref("headers", name) for name in ("X-Request-ID", *headers)},
            "content": {MEDIA_TYPE: {"schema": _ref("schemas", "Problem")}}}


def _endpoints_by_path(app: Flask) -> dict[str, str]:
    out = {}
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<(?:[^<>:]+:)?([^<>]+)>", r"{\1}", rule.rule)
        out[path] = rule.endpoint
    return out


def _operation(spec, path, item, method, op, endpoint, operation_ids) -> None:
    access = op.setdefault("x-zixly-access", "staff")  # a view without @access is staff-only (fail closed)
    tenant_scoped = access in TENANT_ROLES
    op["operationId"] = _operation_id(method, path, endpoint, operation_ids)
    op["security"] = [] if access == "public" else (
        [{BEARER: []}] if access == "staff" else [{API_KEY: []}, {BEARER: []}])
    params = [*item.get("parameters", []), *op.get("parameters", [])]
    paginated = any(p.get("in") == "query" and p.get("name") == "cursor" for p in params)
    body = op.get("requestBody")
    idempotent = bool(op.get("x-zixly-idempotent"))
    op["description"] = _description(op, access, paginated, idempotent)
    extra = [_ref("parameters", "RequestId")]
    if idempotent:
        extra.insert(0, _ref("parameters", "IdempotencyKey"))
    op["parameters"] = [*op.get("parameters", []), *extra]
    for p in op["parameters"]:
        if p.get("in") == "query":
            _query_parameter(p)
    if body is not None:
        _request_example(spec, body)
    responses = op.setdefault("responses", {})
    for status, response in list(responses.items()):
        responses[status] = _response(spec, status, response, tenant_scoped=tenant_scoped,
                                      idempotent=idempotent, paginated=paginated)
    wanted = []
    if access != "public" or body is not None or paginated or idempotent:
        wanted.append("400")
    if access != "public":
        wanted += ["401", "403"]
    if "{" in path:
        wanted.append("404")
    if idempotent:
        wanted.append("409")
    if tenant_scoped:
        wanted.append("410")
    if body is not None:
        wanted += ["413"] + ([] if "x-zixly-raw-body" in op else ["415"])
    if body is not None or params:
        wanted.append("422")
    if tenant_scoped:
        wanted.append("429")
    wanted += ["414", "431"]  # the server layer's limits apply to every operation
    if access != "public":
        wanted.append("503")
    for status in wanted:
        responses.setdefault(status, _ref("responses", _BY_STATUS[status]))
    responses["default"] = _ref("responses", "Error")
    op["responses"] = dict(sorted(responses.items(), key=lambda kv: (kv[0] == "default", kv[0])))


_PAGE_PARAMS = {
    "limit": "Items per page (1–200).",
    "cursor": "Where to continue: the `next_cursor` of the previous page. Omit it for the first page.",
}


def _query_parameter(param: dict) -> None:
    """A query value is never null (it is absent instead): drop the `None` marshmallow's optional fields add."""
    if param["name"] in _PAGE_PARAMS:
        param.setdefault("description", _PAGE_PARAMS[param["name"]])
    schema = param.get("schema", {})
    if schema.get("default", 0) is None:
        del schema["default"]
    schema.pop("nullable", None)
    if "enum" in schema:
        schema["enum"] = [v for v in schema["enum"] if v is not None]


def _operation_id(method: str, path: str, endpoint: str | None, seen: dict) -> str:
    view = (endpoint or path).rsplit(".", 1)[-1]
    name = f"{method}_" + re.sub(r"(?<!^)(?=[A-Z])", "_", view).lower().strip("_")
    name = re.sub(r"[^a-z0-9_]+", "_", name)
    if name in seen and endpoint:  # two blueprints with a view of the same name
        name = f"{method}_{endpoint.split('.')[0]}_{name[len(method) + 1:]}"
    seen[name] = path
    return name


def _description(op: dict, access: str, paginated: bool, idempotent: bool) -> str:
    parts = [op["description"]] if op.get("description") else []
    if access == "public":
        parts.append("**Access:** public, no credentials." + (
            " Authenticated by the sender's signature instead." if op.get("x-zixly-raw-body") else ""))
    elif access == "staff":
        parts.append("**Access:** Zixly staff only (a staff Bearer token).")
    else:
        parts.append(f"**Access:** an API key (`X-API-Key`) or a user token (`Authorization: Bearer`) with role "
                     f"**{access}** or higher. Counts against the tenant's and the key's request limits "
                     f"(`RateLimit-*` headers; 429 with `Retry-After` when used up).")
    if paginated:
        parts.append("**Pagination:** cursor-based. Pass `limit`; while `next_cursor` is not null, pass it back "
                     "as `cursor` for the next page.")
    if idempotent:
        parts.append("**Idempotent:** send an `Idempotency-Key` header to make a retry safe.")
    return "\n\n".join(parts)


def _response(spec, status: str, response: dict, *, tenant_scoped, idempotent, paginated) -> dict:
    if "$ref" in response:
        name = response["$ref"].rsplit("/", 1)[-1]
        if name in ("DEFAULT_ERROR", "UNPROCESSABLE_ENTITY") or name.isupper():  # flask-smorest's defaults
            return _ref("responses", _BY_STATUS.get(status, "Error"))
        return response
    code = int(status) if status.isdigit() else 0
    headers = response.setdefault("headers", {})
    headers.setdefault("X-Request-ID", _ref("headers", "X-Request-ID"))
    if code >= 400:
        response.setdefault("content", {MEDIA_TYPE: {"schema": _ref("schemas", "Problem")}})
        if code in (429, 503):  # an operation's own 429 or 503 says when to come again, like the shared ones
            headers.setdefault("Retry-After", _ref("headers", "Retry-After"))
        return response
    if tenant_scoped:
        for name in RATE_LIMIT_HEADERS:
            headers.setdefault(name, _ref("headers", name))
    if idempotent and 200 <= code < 300:
        headers.setdefault("Idempotent-Replayed", _ref("headers", "Idempotent-Replayed"))
    if paginated and 200 <= code < 300:
        _document_page(spec, response)
    return response


def _document_page(spec, response) -> None:
    for media in response.get("content", {}).values():
        schema = _resolve(spec, media.get("schema", {}))
        props = schema.get("properties", {})
        if "next_cursor" in props:
            props["next_cursor"].setdefault(
                "description", "Pass as `cursor` to get the next page; null on the last page.")
        if "items" in props:
            props["items"].setdefault("description", "This page's items.")


def _resolve(spec, schema: dict) -> dict:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


# --- request examples -------------------------------------------------------------------------------------
def _request_example(spec, body: dict) -> None:
    for media in body.get("content", {}).values():
        if "example" not in media and "examples" not in media and "schema" in media:
            media["example"] = _example(spec, media["schema"], depth=0)


_STRING_FORMATS = {"date-time": "2026-01-31T09:30:00Z", "date": "2026-01-31", "email": "ops@example.com",
                   "uuid": "3f1c2a9e-5b7d-4c1e-9a7b-2d4e6f8a0b1c", "uri": "https://example.com/",
                   "url": "https://example.com/"}


def _example(spec, schema: dict, depth: int):
    schema = _resolve(spec, schema)
    for key in ("example", "default"):
        if schema.get(key) is not None:
            return schema[key]
    enum = [v for v in schema.get("enum", []) if v is not None]
    if enum:
        return enum[0]
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        if depth > 3:
            return {}
        required = set(schema.get("required", []))
        return {name: _example(spec, prop, depth + 1) for name, prop in schema.get("properties", {}).items()
                if not prop.get("readOnly") and (name in required or "example" in prop)}
    if kind == "array":
        return [_example(spec, schema.get("items", {}), depth + 1)]
    if kind == "integer":
        return schema.get("minimum", 1)
    if kind == "number":
        return schema.get("minimum", 1.0)
    if kind == "boolean":
        return True
    if kind == "string":
        text = _STRING_FORMATS.get(schema.get("format"), "example")
        return text.ljust(schema.get("minLength", 0), "x")
    return {}


# --- links ------------------------------------------------------------------------------------------------
def _links(spec) -> None:
    """A create (POST on a collection) links to the operations on the item it made: create → get → delete."""
    paths = spec.get("paths", {})
    for path, item in paths.items():
        post = item.get("post")
        if post is None or "{" in path.rsplit("/", 1)[-1]:
            continue
        for status, response in post.get("responses", {}).items():
            if not status.startswith("2") or "$ref" in response:
                continue
            schema = _resolve(spec, response.get("content", {}).get("application/json", {}).get("schema", {}))
            fields = schema.get("properties", {})
            links = {}
            for other, other_item in paths.items():
                match = re.fullmatch(re.escape(path) + r"/\{([^/{}]+)\}(/[^{}]*)?", other)
                if not match:
                    continue
                param = match.group(1)
                field = param if param in fields else ("id" if "id" in fields else None)
                if field is None:
                    continue
                for method, op in other_item.items():
                    if method in _METHODS:
                        links[op["operationId"]] = {"operationId": op["operationId"],
                                                    "parameters": {param: f"$response.body#/{field}"}}
            if links:
                response["links"] = dict(sorted(links.items()))


def _prune_schemas(spec) -> None:
    """Drop schemas nothing refers to (flask-smorest registers its page-number `PaginationMetadata` always)."""
    schemas = spec.get("components", {}).get("schemas", {})
    while True:
        rest = {k: v for k, v in spec.items() if k != "components"}
        text = repr(rest) + repr({k: v for k, v in spec["components"].items()})
        unused = [name for name in schemas if f"'#/components/schemas/{name}'" not in text]
        if not unused:
            return
        for name in unused:
            del schemas[name]


# --- tags -------------------------------------------------------------------------------------------------
def _tags(spec) -> None:
    access_by_tag: dict[str, set] = {}
    for item in spec.get("paths", {}).values():
        for method, op in item.items():
            if method in _METHODS:
                for tag in op.get("tags", []):
                    access_by_tag.setdefault(tag, set()).add(op["x-zixly-access"])
    groups: dict[str, list] = {group: [] for group in TAG_GROUPS}
    names = {}
    for tag in spec.get("tags", []):
        raw = tag["name"]
        staff = access_by_tag.get(raw) == {"staff"}
        group = "Staff" if staff else next((g for g, members in TAG_GROUPS.items() if raw in members), "More")
        name = TAG_NAMES.get(raw) or raw.replace("_", " ").capitalize()
        if staff:
            name = "Staff: " + re.sub(r"^Staff ", "", name).capitalize()
        names[raw] = name
        tag["name"] = name
        groups[group].append(tag)
    order = {g: i for i, g in enumerate(TAG_GROUPS)}
    spec["tags"] = [t for g in sorted(groups, key=order.get) for t in groups[g]]
    spec["x-tagGroups"] = [{"name": g, "tags": [t["name"] for t in tags]} for g, tags in groups.items() if tags]
    for item in spec.get("paths", {}).values():
        for method, op in item.items():
            if method in _METHODS:
                op["tags"] = [names.get(t, t) for t in op.get("tags", [])]


_TOP = ("openapi", "info", "servers", "tags", "x-tagGroups", "paths", "x-webhooks", "components")

_SIGNATURE_HEADERS = [
    {"name": "webhook-id", "in": "header", "required": True, "schema": {"type": "string"},
     "description": "The message's id: the same on every retry and replay; de-duplicate on it."},
    {"name": "webhook-timestamp", "in": "header", "required": True, "schema": {"type": "string"},
     "description": "Seconds since the epoch when this attempt was signed; refuse stale ones (5 minutes)."},
    {"name": "webhook-signature", "in": "header", "required": True, "schema": {"type": "string"},
     "description": "Space-separated `v1,<base64>` HMAC-SHA256 signatures of `id.timestamp.body` (Standard "
                    "Webhooks); two during a secret rotation's grace period. Verify with any Standard Webhooks "
                    "library and your `whsec_…` secret."},
]


def _event_catalogue(spec) -> None:
    """The event types subscriptions deliver (`x-webhooks`, as OpenAPI 3.1's `webhooks`), one body schema each."""
    schemas = spec["components"].setdefault("schemas", {})
    hooks = {}
    for event_type, schema in catalogue.spec_catalogue().items():
        name = "Event" + "".join(part.capitalize() for part in re.split(r"[._]", event_type))
        schemas[name] = copy.deepcopy(schema)
        hooks[event_type] = {"post": {
            "tags": ["Event subscriptions"], "operationId": f"event_{event_type.replace('.', '_')}",
            "summary": schema["properties"]["data"]["description"], "parameters": copy.deepcopy(_SIGNATURE_HEADERS),
            "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("schemas", name)}}},
            "responses": {"2XX": {"description": "Received: the delivery ends."},
                          "410": {"description": "Gone: the subscription is disabled at once."},
                          "default": {"description": "Anything else (or no answer within 5 s) is retried with "
                                                     "backoff over about 28 hours; Retry-After is honoured on "
                                                     "429 and 503."}}}}
    spec["x-webhooks"] = hooks


_OPERATION = ("tags", "summary", "description", "operationId", "security", "parameters", "requestBody",
              "responses")


def _ordered(spec: dict) -> dict:
    """Keys in reading order (top level, then each operation), so the YAML reads like a reference."""
    def order(mapping: dict, first) -> dict:
        out = {key: mapping[key] for key in first if key in mapping}
        out.update(sorted((k, v) for k, v in mapping.items() if k not in out))
        return out

    tag_rank = {tag["name"]: i for i, tag in enumerate(spec.get("tags", []))}

    def rank(item) -> int:  # paths in the order of their tags, as the reference shows them
        return min((tag_rank.get(t, len(tag_rank)) for m, op in item[1].items() if m in _METHODS
                    for t in op.get("tags", [])), default=len(tag_rank))

    spec["paths"] = dict(sorted(spec.get("paths", {}).items(), key=rank))
    for item in spec["paths"].values():
        for method in [m for m in item if m in _METHODS]:
            item[method] = order(item[method], _OPERATION)
        if "parameters" in item:
            item_order = ("parameters", *(m for m in item if m != "parameters"))
            item.update({k: item.pop(k) for k in item_order})
    return order(spec, _TOP)


def contract(app: Flask) -> dict:
    """The app's finished spec, built once (after every blueprint is registered) and kept."""
    spec = app.extensions.get("zixly_contract")
    if spec is None:
        api = app.extensions["flask-smorest"]["apis"][""]["ext_obj"]
        spec = app.extensions["zixly_contract"] = complete(api.spec.to_dict(), app)
    return spec
