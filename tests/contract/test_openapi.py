"""The committed spec is the contract: it equals the spec generated from the code, it is valid OpenAPI, it is
what the app serves, and every operation in it documents what a client needs (so a new endpoint that does not
fails here)."""
import re
from pathlib import Path
from urllib.parse import quote

import pytest
import yaml
from openapi_spec_validator import validate

from api import gunicorn_conf
from api.openapi import PROBLEMS, TAG_GROUPS
from api.spec import REGENERATE, render_spec

ROOT = Path(__file__).resolve().parents[2]
SPEC_FILE = ROOT / "openapi" / "openapi.yaml"
SPEC = yaml.safe_load(SPEC_FILE.read_text())
METHODS = ("get", "put", "post", "delete", "patch")
OPERATIONS = [(path, method, op) for path, item in SPEC["paths"].items()
              for method, op in item.items() if method in METHODS]
IDS = [f"{m.upper()} {p}" for p, m, _ in OPERATIONS]


def test_committed_spec_matches_code():
    assert SPEC_FILE.read_text() == render_spec(), (
        f"openapi/openapi.yaml differs from the code: run `{REGENERATE}` and commit openapi/openapi.yaml")


def test_spec_is_valid_openapi():
    validate(SPEC)


def test_served_spec_is_the_committed_one(client):
    r = client.get("/openapi.json")
    assert r.status_code == 200 and r.content_type == "application/json"
    assert r.get_json() == SPEC


def resolve(node):
    while "$ref" in node:
        kind, name = node["$ref"].split("/")[-2:]
        node = SPEC["components"][kind][name]
    return node


def params_of(path, op):
    return [resolve(p) for p in SPEC["paths"][path].get("parameters", []) + op.get("parameters", [])]


@pytest.mark.parametrize("path,method,op", OPERATIONS, ids=IDS)
def test_operation_is_fully_documented(path, method, op):
    assert op.get("summary") and op.get("description"), "give the view a docstring"
    assert re.fullmatch(r"[a-z][a-z0-9_]*", op["operationId"])
    access = op["x-zixly-access"]
    security = {name for requirement in op["security"] for name in requirement}
    assert security == {"public": set(), "staff": {"BearerAuth"}}.get(access, {"ApiKeyAuth", "BearerAuth"})
    tenant_scoped = access in ("VIEWER", "EDITOR", "ADMIN")
    params = params_of(path, op)
    names = {(p["in"], p["name"]) for p in params}
    assert ("header", "X-Request-ID") in names
    assert (("header", "Idempotency-Key") in names) == bool(op.get("x-zixly-idempotent"))
    if ("query", "cursor") in names:
        assert ("query", "limit") in names
        assert all(p.get("description") for p in params if p["name"] in ("cursor", "limit"))
    responses = op["responses"]
    assert "default" in responses
    if access != "public":
        assert {"401", "403"} <= set(responses)
    if tenant_scoped:
        assert {"429", "410"} <= set(responses)
    if "{" in path:
        assert "404" in responses
    if "requestBody" in op:
        assert {"413", "422"} <= set(responses)
        for media in op["requestBody"]["content"].values():
            assert "example" in media or "examples" in media
    for status, response in responses.items():
        response = resolve(response)
        assert response.get("description")
        headers = response.get("headers", {})
        assert "X-Request-ID" in headers, status
        if status == "default" or int(status) >= 400:
            assert list(response["content"]) == ["application/problem+json"], status
            assert response["content"]["application/problem+json"]["schema"] == {
                "$ref": "#/components/schemas/Problem"}
        elif int(status) < 300:
            if tenant_scoped:
                assert {"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "X-RateLimit-Limit"} <= set(
                    headers)
            if ("query", "cursor") in names:
                page = resolve(response["content"]["application/json"]["schema"])
                assert {"items", "next_cursor"} <= set(page["properties"])
                assert page["properties"]["next_cursor"].get("nullable")
    if "429" in responses:
        assert "Retry-After" in resolve(responses["429"])["headers"]


# Bytes one query value can take on the wire, percent-encoded: 3 per character where the schema allows only
# printable ASCII, 12 (a 4-byte UTF-8 character) otherwise.
ASCII_ONLY = {"^[ -~]*$", "^[ -~]+$"}
PATH_PARAMETER_BYTES = 64  # ids and names; the spec bounds no path parameter (yet)


def worst_case_bytes(schema) -> int | None:
    """The longest a schema-valid value is, percent-encoded; None when nothing bounds it."""
    if "enum" in schema:
        return max(len(quote(str(v), safe="")) for v in schema["enum"])
    kind, fmt = schema.get("type"), schema.get("format")
    if kind in ("integer", "number", "boolean"):
        return 32
    if fmt == "uuid":
        return 36
    if fmt == "date-time":
        return 3 * 40  # 2026-12-03T13:00:00.123456+00:00, every separator encoded
    if "maxLength" not in schema:
        return None
    return schema["maxLength"] * (3 if schema.get("pattern") in ASCII_ONLY else 12)


@pytest.mark.parametrize("path,method,op", OPERATIONS, ids=IDS)
def test_every_schema_valid_request_line_fits_the_server_limit(path, method, op):
    """A request whose query values are all at their schema's maximum still fits gunicorn's request line (else it
    would be a 414 for valid input): every query parameter is bounded, and the bounds add up to what fits."""
    params = params_of(path, op)
    unbounded = [p["name"] for p in params if p["in"] == "query" and worst_case_bytes(p["schema"]) is None]
    assert not unbounded, f"give these query parameters a maxLength (or an enum or format): {unbounded}"
    target = re.sub(r"\{[^}]+\}", "x" * PATH_PARAMETER_BYTES, path)
    query = "&".join(f"{p['name']}={'x' * worst_case_bytes(p['schema'])}" for p in params if p["in"] == "query")
    line = f"{method.upper()} {target}?{query} HTTP/1.1"
    assert len(line) <= gunicorn_conf.limit_request_line, (
        f"{len(line)} bytes at the schema's maxima, over the {gunicorn_conf.limit_request_line} the server takes")


def test_the_request_line_check_catches_an_oversized_bound():
    assert worst_case_bytes({"type": "string", "maxLength": 1000}) == 12_000 > gunicorn_conf.limit_request_line
    assert worst_case_bytes({"type": "string", "maxLength": 1000, "pattern": "^[ -~]*$"}) == 3000
    assert worst_case_bytes({"type": "string"}) is None


def test_problem_responses_share_one_schema():
    problem = SPEC["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail", "errors", "request_id"} <= set(problem["properties"])
    assert set(SPEC["components"]["responses"]) == set(PROBLEMS)
    for response in SPEC["components"]["responses"].values():
        assert list(response["content"]) == ["application/problem+json"]


def test_tags_are_grouped_and_staff_is_apart():
    groups = {g["name"]: g["tags"] for g in SPEC["x-tagGroups"]}
    assert set(groups) <= set(TAG_GROUPS)
    grouped = [t for tags in groups.values() for t in tags]
    assert sorted(grouped) == sorted(t["name"] for t in SPEC["tags"])  # each tag in exactly one group
    for _path, _method, op in OPERATIONS:
        assert len(op["tags"]) == 1 and op["tags"][0] in grouped
        in_staff = op["tags"][0] in groups.get("Staff", [])
        assert in_staff == (op["x-zixly-access"] == "staff"), op["operationId"]
    assert all(name.startswith("Staff: ") for name in groups["Staff"])


def test_operation_ids_are_unique():
    ids = [op["operationId"] for _p, _m, op in OPERATIONS]
    assert len(ids) == len(set(ids))


def test_creates_link_to_what_they_create():
    links = SPEC["paths"]["/v1/jobs"]["post"]["responses"]["202"]["links"]
    assert links["get_job_by_id"] == {"operationId": "get_job_by_id", "parameters": {"job_id": "$response.body#/id"}}
    staff = SPEC["paths"]["/v1/staff/tenants"]["post"]["responses"]["201"]["links"]
    assert staff["delete_tenant_by_slug"]["parameters"] == {"slug": "$response.body#/slug"}


def test_cli_writes_and_checks_the_spec(tmp_path):
    from click.testing import CliRunner

    from zixly_cli.main import main

    runner = CliRunner()
    out = tmp_path / "openapi.yaml"
    assert runner.invoke(main, ["openapi", "write", "-o", str(out)]).exit_code == 0
    assert out.read_text() == SPEC_FILE.read_text()
    assert runner.invoke(main, ["openapi", "check", "--spec", str(out)]).exit_code == 0
    out.write_text(out.read_text().replace("Start a job", "Begin a job"))
    drifted = runner.invoke(main, ["openapi", "check", "--spec", str(out)])
    assert drifted.exit_code == 1 and "make spec" in drifted.output


def test_a_new_endpoint_is_documented_by_its_ordinary_decorators():
    """What the lead's next blueprint gets without doing anything beyond @access / @idempotent / page args."""
    import marshmallow as ma
    from flask.views import MethodView
    from flask_smorest import Blueprint

    from api.app import create_app
    from api.auth import access
    from api.common import PageArgsSchema, idempotent
    from api.openapi import contract
    from api.spec import _OFFLINE

    blp = Blueprint("widgets", __name__, url_prefix="/v1/widgets", description="Widgets.")

    class WidgetSchema(ma.Schema):
        id = ma.fields.String()

    class WidgetPageSchema(ma.Schema):
        items = ma.fields.List(ma.fields.Nested(WidgetSchema))
        next_cursor = ma.fields.String(allow_none=True)

    class WidgetCreateSchema(ma.Schema):
        name = ma.fields.String(required=True)

    @blp.route("")
    class Widgets(MethodView):
        @access("VIEWER")
        @blp.arguments(PageArgsSchema, location="query")
        @blp.response(200, WidgetPageSchema)
        def get(self, args):
            """List widgets."""

        @access("EDITOR")
        @idempotent("tenant")
        @blp.arguments(WidgetCreateSchema)
        @blp.response(201, WidgetSchema)
        def post(self, data):
            """Make a widget."""

    @blp.route("/<string:widget_id>")
    class WidgetById(MethodView):
        @blp.response(200, WidgetSchema)
        def get(self, widget_id):
            """One widget (no @access: staff-only, as at run time)."""

    app = create_app(_OFFLINE, offline=True)
    app.extensions["flask-smorest"]["apis"][""]["ext_obj"].register_blueprint(blp)
    spec = contract(app)
    validate(spec)
    listing, create = spec["paths"]["/v1/widgets"]["get"], spec["paths"]["/v1/widgets"]["post"]
    assert listing["operationId"] == "get_widgets" and "**Pagination:**" in listing["description"]
    assert {"401", "403", "410", "429", "default"} <= set(listing["responses"])
    assert "RateLimit-Remaining" in listing["responses"]["200"]["headers"]
    assert {"$ref": "#/components/parameters/IdempotencyKey"} in create["parameters"]
    assert create["requestBody"]["content"]["application/json"]["example"] == {"name": "example"}
    assert create["responses"]["201"]["links"]["get_widget_by_id"]["parameters"] == {
        "widget_id": "$response.body#/id"}
    by_id = spec["paths"]["/v1/widgets/{widget_id}"]["get"]
    assert by_id["x-zixly-access"] == "staff" and by_id["security"] == [{"BearerAuth": []}]
    assert "Widgets" in {g["name"]: g["tags"] for g in spec["x-tagGroups"]}["More"]
