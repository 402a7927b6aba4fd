"""Deeply nested JSON is a 400 problem on every JSON endpoint, decided before parsing, and changes nothing."""
import json

import pytest

from api.body import MAX_JSON_DEPTH, json_depth_exceeds

ARRAYS = "[" * 1000 + "]" * 1000
OBJECTS = '{"a": ' * 1000 + "1" + "}" * 1000


def deep_bodies():
    yield ARRAYS
    yield OBJECTS
    yield json.dumps({"workflow": "echo", "input": {"x": "PLACEHOLDER"}}).replace('"PLACEHOLDER"', OBJECTS)
    yield json.dumps({"slug": "deep-json", "name": "Deep", "plan": "free", "admin_email": "PLACEHOLDER"}).replace(
        '"PLACEHOLDER"', ARRAYS)
    yield json.dumps({"enabled": True, "mappings": {"m": "PLACEHOLDER"}}).replace('"PLACEHOLDER"', OBJECTS)


def assert_too_deep(r):
    assert r.status_code == 400, r.get_data()[:300]
    assert r.content_type == "application/problem+json"
    body = r.get_json()
    assert body["type"].endswith("/json-too-deep") and str(MAX_JSON_DEPTH) in body["detail"]
    assert r.headers["X-Request-ID"]


def test_deep_json_is_a_400_problem_and_changes_nothing(client, make_tenant, staff_headers):
    t = make_tenant()
    json_headers = {"Content-Type": "application/json"}

    def state():
        return (client.get("/v1/jobs", headers=t.headers).get_json()["items"],
                client.get("/v1/api-keys", headers=t.headers).get_json()["items"],
                client.get("/v1/workflows/echo", headers=t.headers).get_json(),
                client.get("/v1/staff/tenants/deep-json", headers=staff_headers).status_code)

    before = state()
    for body in deep_bodies():
        assert_too_deep(client.post("/v1/jobs", data=body, headers={**t.headers, **json_headers}))
        assert_too_deep(client.post("/v1/api-keys", data=body, headers={**t.headers, **json_headers}))
        assert_too_deep(client.post("/v1/staff/tenants", data=body, headers={**staff_headers, **json_headers}))
        assert_too_deep(client.put("/v1/workflows/echo", data=body, headers={**t.headers, **json_headers}))
    assert_too_deep(client.post("/v1/jobs", data=ARRAYS, headers=json_headers))  # before authentication, too
    assert state() == before


def test_nesting_up_to_the_limit_is_parsed_as_usual(client, make_tenant):
    t = make_tenant()
    nested = "[" * (MAX_JSON_DEPTH - 2) + "]" * (MAX_JSON_DEPTH - 2)  # inside {"input": {"x": …}}
    body = json.dumps({"workflow": "echo", "input": {"x": "PLACEHOLDER"}}).replace('"PLACEHOLDER"', nested)
    r = client.post("/v1/jobs", data=body, headers={**t.headers, "Content-Type": "application/json"})
    assert r.status_code == 202, r.get_data()[:300]


@pytest.mark.parametrize("body, deep", [
    (b"[" * 65 + b"]" * 65, True),
    (b"[" * 64 + b"]" * 64, False),
    (b'{"a": ' * 65 + b"1" + b"}" * 65, True),
    (b'["' + b"[" * 100 + b'"]', False),  # brackets inside a string do not nest
    (b'["\\"' + b"[" * 100 + b'"]', False),  # nor after an escaped quote
    (b"[" + b"{}," * 10_000 + b"1]", False),  # many siblings are not depth
])
def test_depth_is_counted_outside_strings(body, deep):
    assert json_depth_exceeds(body) is deep
