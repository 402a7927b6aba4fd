"""The committed spec is the contract: it must equal the spec generated from the code."""
import json
from pathlib import Path

from api.spec import render_spec

SPEC = Path(__file__).resolve().parents[2] / "openapi" / "openapi.json"


def test_committed_spec_matches_code():
    assert SPEC.read_text() == render_spec(), "run `make spec` and commit openapi/openapi.json"


def test_served_spec_is_the_committed_one(client):
    served = client.get("/openapi.json").get_json()
    assert served == json.loads(SPEC.read_text())


def test_every_operation_documents_problem_responses():
    spec = json.loads(SPEC.read_text())
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if method == "parameters":
                continue
            assert "default" in op["responses"], (method, path)
            if op["x-zixly-access"] != "public":
                assert {"401", "403"} <= set(op["responses"]), (method, path)
    error = spec["components"]["responses"]["DEFAULT_ERROR"]["content"]
    assert list(error) == ["application/problem+json"]
    assert {"type", "title", "status", "detail"} <= set(spec["components"]["schemas"]["Problem"]["properties"])
