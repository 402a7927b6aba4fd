"""Tenant isolation through the API as production serves it (gunicorn, two workers of four threads each).

1. Tenant B's key, given ids of tenant A's objects (an API key, a connection and its webhook secret, an event,
   a job), gets for every tenant-scoped operation of the spec taking them exactly what it gets for ids that do not
   exist (404, never a 2xx): existence does not leak, and nothing of A's changes. B's lists never show A's ids,
   and A's workflow settings are not B's. The operations come from the committed spec, so new ones are covered.
2. Many requests of A and B at once, spread over both gunicorn workers and their threads: every answer shows
   only the caller's own tenant, jobs and connections (each request runs in its own tenant's schema).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
import yaml
from prometheus_client.mmap_dict import MmapedDict

from core.inbound import listener
from tests.conftest import unique_slug

SPEC_FILE = Path(__file__).resolve().parents[2] / "openapi" / "openapi.yaml"
NOT_TENANT_SCOPED = {"public", "staff"}


class Caller:
    """One tenant's admin key against the live server; every call on a fresh connection, so calls spread over
    gunicorn's workers."""

    def __init__(self, base_url: str, slug: str, key: str):
        self.base_url, self.slug, self.key = base_url, slug, key

    def call(self, method: str, path: str, body=None, **headers):
        headers = {"X-API-Key": self.key, **headers}
        if body is not None and method in {"POST", "PUT", "PATCH"}:
            headers["Idempotency-Key"] = f"iso-{uuid.uuid4()}"
        return requests.request(method, self.base_url + path, json=body, headers=headers, timeout=30)


def _tenant(base_url) -> Caller:
    from core.platform.actors import Actor
    from core.tenants import service as tenants

    tenant, _key, secret = tenants.create_tenant(slug=unique_slug("iso"), name="Isolation Ltd", plan="enterprise",
                                                 actor=Actor("staff", "pytest"))
    return Caller(base_url, tenant.slug, secret)


def _ok(answer, status=(200, 201, 202)):
    assert answer.status_code in status, (answer.status_code, answer.text[:500])
    return answer.json()


def _standard_webhook(caller: Caller, token: str, raw_key: bytes, body: dict) -> str:
    """A delivery signed the Standard Webhooks way (`v1,` HMAC-SHA256 of `id.timestamp.body`); the id of the event
    it made, once fanned out behind the answer (what `zixly inbox` does, here in the test's process)."""
    data = json.dumps(body).encode()
    msg_id, ts = f"msg_{uuid.uuid4().hex}", str(int(time.time()))
    sig = base64.b64encode(hmac.new(raw_key, f"{msg_id}.{ts}.".encode() + data, hashlib.sha256).digest()).decode()
    receipt = _ok(requests.post(f"{caller.base_url}/v1/hooks/{token}", data=data, timeout=30, headers={
        "webhook-id": msg_id, "webhook-timestamp": ts, "webhook-signature": f"v1,{sig}",
        "Content-Type": "application/json"}), (200,))
    assert receipt == {"received": 1, "dropped": 0}, receipt
    listener.drain_all()
    [event] = [e for e in _ok(caller.call("GET", "/v1/events?limit=100"))["items"] if e["provider_event_id"] == msg_id]
    return event["id"]


def _objects(caller: Caller) -> dict[str, str]:
    """One of each object through the API; answers the path parameter each one's id fills."""
    key = _ok(caller.call("POST", "/v1/api-keys", {"name": f"{caller.slug}-viewer", "role": "VIEWER"}))
    raw_key = secrets.token_bytes(32)
    connection = _ok(caller.call("POST", "/v1/connections", {
        "provider": "custom", "name": f"{caller.slug}-hooks",
        "webhook_secret": "whsec_" + base64.b64encode(raw_key).decode()}))
    token = connection["webhook"]["url"].rstrip("/").rsplit("/", 1)[-1]
    event_id = _standard_webhook(caller, token, raw_key, {"type": "invoice.paid", "data": {"tenant": caller.slug}})
    job = _ok(caller.call("POST", "/v1/jobs", {"workflow": "echo", "input": {"tenant": caller.slug}}))
    return {"key_id": key["id"], "connection_id": connection["id"],
            "secret_id": connection["webhook"]["secrets"][0]["id"], "event_id": event_id,
            "job_id": job["id"]}


def _operations():
    """(method, path, path parameters, body, body_is_valid) of every tenant-scoped operation: body is None for an
    operation that takes none, else `{}`, which is valid unless the body's schema requires fields (then it is a
    422 whatever the id, and only the sameness of the answers is checked)."""
    spec = yaml.safe_load(SPEC_FILE.read_text())
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if method == "parameters" or op.get("x-zixly-access") in NOT_TENANT_SCOPED:
                continue
            params = [p["name"] for p in item.get("parameters", []) + op.get("parameters", [])
                      if "$ref" not in p and p["in"] == "path"]
            body, valid = None, True
            if "requestBody" in op:
                schema = op["requestBody"]["content"]["application/json"]["schema"]
                if "$ref" in schema:
                    schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
                body, valid = {}, not schema.get("required")
            yield method.upper(), path, params, body, valid


def _problem_kind(answer) -> tuple[int, str]:
    return answer.status_code, answer.json().get("type", "")


@pytest.fixture(scope="module")
def two_tenants(live_server):
    a, b = _tenant(live_server), _tenant(live_server)
    return (a, _objects(a)), (b, _objects(b))


def _snapshot(caller: Caller, ids: dict[str, str]) -> dict:
    keys = {k["id"]: k for k in _ok(caller.call("GET", "/v1/api-keys?include_revoked=true"))["items"]}
    return {"key": keys[ids["key_id"]],
            "connection": _ok(caller.call("GET", f"/v1/connections/{ids['connection_id']}")),
            "event": _ok(caller.call("GET", f"/v1/events/{ids['event_id']}")),
            "job": _ok(caller.call("GET", f"/v1/jobs/{ids['job_id']}"))}


def test_another_tenants_ids_are_as_good_as_unknown_ones(two_tenants):
    (a, ids_a), (b, _ids_b) = two_tenants
    before = _snapshot(a, ids_a)
    swept = []
    for method, path, params, body, body_is_valid in _operations():
        if not params or not set(params) <= set(ids_a):
            continue  # no object of A's fills this path (the lists are checked below)
        with_a = b.call(method, path.format(**{p: ids_a[p] for p in params}), body)
        with_unknown = b.call(method, path.format(**{p: str(uuid.uuid4()) for p in params}), body)
        assert not 200 <= with_a.status_code < 300, (method, path, with_a.text[:300])
        assert with_a.headers["Content-Type"] == "application/problem+json", (method, path)
        assert _problem_kind(with_a) == _problem_kind(with_unknown), (method, path, with_a.text, with_unknown.text)
        if body_is_valid:
            assert with_a.status_code == 404, (method, path, with_a.text[:300])
        swept.append(f"{method} {path}")
    # the representative set, at least: keys, connections and their secrets, events, jobs
    assert {"DELETE /v1/api-keys/{key_id}", "GET /v1/connections/{connection_id}",
            "PATCH /v1/connections/{connection_id}", "DELETE /v1/connections/{connection_id}",
            "DELETE /v1/connections/{connection_id}/webhook/secrets/{secret_id}", "GET /v1/events/{event_id}",
            "POST /v1/events/{event_id}/replay", "GET /v1/jobs/{job_id}", "POST /v1/jobs/{job_id}/cancel",
            "POST /v1/jobs/{job_id}/retry"} <= set(swept), swept
    assert _snapshot(a, ids_a) == before  # nothing of A's changed


def test_lists_show_only_the_callers_own_objects(two_tenants):
    (a, ids_a), (b, ids_b) = two_tenants
    lists = [path for method, path, params, *_ in _operations() if method == "GET" and not params]
    assert {"/v1/api-keys", "/v1/connections", "/v1/events", "/v1/jobs", "/v1/audit-log"} <= set(lists)
    for path in lists:
        for caller, other, other_ids in ((a, b, ids_b), (b, a, ids_a)):
            answer = caller.call("GET", path)
            assert answer.status_code == 200, (path, answer.text[:300])
            leaked = [v for v in [*other_ids.values(), other.slug] if v in answer.text]
            assert not leaked, (caller.slug, path, leaked)


def test_workflow_settings_are_the_tenants_own(two_tenants):
    (a, _), (b, _) = two_tenants
    default = _ok(b.call("GET", "/v1/workflows/echo"))["max_attempts"]
    _ok(a.call("PUT", "/v1/workflows/echo", {"max_attempts": default % 20 + 1}))
    assert _ok(a.call("GET", "/v1/workflows/echo"))["max_attempts"] == default % 20 + 1
    assert _ok(b.call("GET", "/v1/workflows/echo"))["max_attempts"] == default
    assert b.call("GET", "/v1/workflows/not-a-workflow").status_code == 404


def _requests_per_worker(metrics_dir: Path) -> Counter:
    """Requests each gunicorn worker has answered (prometheus-flask-exporter's counter, in the worker's own
    multiprocess file `counter_<pid>.db`)."""
    served = Counter()
    for path in metrics_dir.glob("counter_*.db"):
        pid = path.stem.split("_", 1)[1]
        for key, value, *_ in MmapedDict.read_all_values_from_file(str(path)):
            if json.loads(key)[1] == "flask_http_request_total":
                served[pid] += value
    return served


def test_interleaved_requests_over_two_workers_each_see_their_own_tenant(live_server, gunicorn_server):
    """Each tenant has its own number of jobs; 400 requests of both at once (16 clients), each on a new
    connection; both workers answer some of them."""
    callers = [_tenant(live_server), _tenant(live_server)]
    own_jobs = {}
    for caller, n in zip(callers, (3, 5), strict=True):
        own_jobs[caller.slug] = {_ok(caller.call("POST", "/v1/jobs", {"workflow": "echo", "input": {"n": i}}))["id"]
                                 for i in range(n)}
    metrics_dir = Path(gunicorn_server.environment()["PROMETHEUS_MULTIPROC_DIR"])
    before = _requests_per_worker(metrics_dir)

    def one(i: int) -> list[str]:
        caller, other = callers[i % 2], callers[1 - i % 2]
        wrong = []
        if (tenant := caller.call("GET", "/v1/tenant").json()).get("slug") != caller.slug:
            wrong.append(f"{caller.slug} /v1/tenant: {tenant}")
        page = caller.call("GET", "/v1/jobs?limit=100").json()
        if {j["id"] for j in page.get("items", [])} != own_jobs[caller.slug]:
            wrong.append(f"{caller.slug} /v1/jobs: {page}")
        mine, theirs = next(iter(own_jobs[caller.slug])), next(iter(own_jobs[other.slug]))
        if caller.call("GET", f"/v1/jobs/{mine}").status_code != 200:
            wrong.append(f"{caller.slug} own job")
        if caller.call("GET", f"/v1/jobs/{theirs}").status_code != 404:
            wrong.append(f"{caller.slug} saw {other.slug}'s job")
        return wrong

    with ThreadPoolExecutor(max_workers=16) as pool:
        wrong = [w for ws in pool.map(one, range(100)) for w in ws]
    assert wrong == [], wrong[:5]
    served = _requests_per_worker(metrics_dir) - before
    assert sum(served.values()) == 400  # ours alone: nothing else calls the server meanwhile
    assert len(served) >= 2, f"one gunicorn worker served every request: {served}"
