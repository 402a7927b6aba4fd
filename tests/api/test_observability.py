"""Metrics after a real flow, multiprocess aggregation under gunicorn, webhook ingress limits, JSON logs."""
import base64
import dataclasses
import hashlib
import hmac
import io
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from api.app import create_app
from core import bootstrap
from core.connections import store
from core.execution.service import execute_job
from core.platform import logs
from core.platform.config import Settings
from devstack import free_port
from tenancy.context import tenant_context

ROOT = Path(__file__).resolve().parents[2]
XERO_KEY = "obs-xero-app-key-" + "x" * 30


def samples(text: str) -> dict:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(snapshot, name, **labels):
    return sum(v for (n, lbls), v in snapshot.items()
               if n == name and all(dict(lbls).get(k) == want for k, want in labels.items()))


METRICS_AUTH = {"Authorization": "Bearer test-metrics-token"}  # the tests' settings carry this token


def scrape(client) -> dict:
    r = client.get("/metrics", headers=METRICS_AUTH)
    assert r.status_code == 200 and r.mimetype == "text/plain"
    return samples(r.get_data(as_text=True))


def standard_sign(secret: str, body: bytes, msg_id: str) -> dict:
    ts = str(int(time.time()))
    key = base64.b64decode(secret.removeprefix("whsec_"))
    sig = base64.b64encode(hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()).decode()
    return {"webhook-id": msg_id, "webhook-timestamp": ts, "webhook-signature": f"v1,{sig}",
            "Content-Type": "application/json"}


def b64hmac(secret, body):
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


@pytest.fixture()
def xero_app_secret(settings):
    bootstrap.init(dataclasses.replace(settings, app_webhook_secrets={"xero": (XERO_KEY,)}))
    yield
    bootstrap.init(settings)


def test_metrics_after_a_flow_has_every_family_with_sensible_values(client, make_tenant, xero_app_secret):
    before = scrape(client)
    t = make_tenant("obs")
    secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
    with tenant_context(t.ref):
        _, token = store.create_connection(provider="custom", webhook_secrets=[secret])
    assert client.put("/v1/workflows/echo", json={"enabled": True, "event_types": ["*"]},  # echo is opt-in
                      headers=t.headers).status_code == 200
    body = json.dumps({"type": "invoice.paid", "data": {"id": "inv-1"}}).encode()
    msg_id = f"msg_{uuid.uuid4().hex}"
    assert client.post(f"/v1/hooks/{token}", data=body, headers=standard_sign(secret, body, msg_id)).status_code == 200
    assert client.post(f"/v1/hooks/{token}", data=body, headers=standard_sign(secret, body, msg_id)).status_code == 200
    bad = standard_sign("whsec_" + base64.b64encode(os.urandom(24)).decode(), body, "msg_x")
    assert client.post(f"/v1/hooks/{token}", data=body, headers=bad).status_code == 401
    assert client.post("/v1/hooks/wh_unknown_token_value", data=body, headers=bad).status_code == 404
    xero = json.dumps({"events": [{"resourceId": str(uuid.uuid4()), "tenantId": str(uuid.uuid4()),
                                   "eventDateUtc": "2026-11-25T10:00:00", "eventType": "UPDATE",
                                   "eventCategory": "INVOICE", "resourceUrl": "https://api.xero.com/x"}],
                       "firstEventSequence": 1, "lastEventSequence": 1, "entropy": "E"}).encode()
    assert client.post("/v1/hooks/apps/xero", data=xero, headers={
        "x-xero-signature": b64hmac(XERO_KEY, xero), "Content-Type": "application/json"}).status_code == 200
    r = client.post("/v1/jobs", json={"workflow": "echo", "input": {"n": 1}}, headers=t.headers)
    ok_job = r.get_json()["id"]
    failing = client.post("/v1/jobs", json={"workflow": "echo", "input": {"fail": "permanent"}},
                          headers=t.headers).get_json()["id"]
    with tenant_context(t.ref):
        assert execute_job(ok_job) == "COMPLETED"
        assert execute_job(failing) == "FAILED"
    after = scrape(client)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("zixly_webhooks_received_total", provider="custom") == 3
    assert delta("zixly_webhooks_verified_total", provider="custom") == 2
    assert delta("zixly_webhooks_rejected_total", provider="custom", reason="signature") == 1
    assert delta("zixly_webhooks_rejected_total", reason="unknown-endpoint") == 1
    assert delta("zixly_webhooks_unrouted_total", provider="xero") == 1
    assert delta("zixly_events_deduplicated_total", provider="custom") == 1
    assert delta("zixly_jobs_queued_total", workflow="echo") >= 3  # two by API, one by the stored event
    # (a worker thread of an earlier test may also pick up the event's echo job in this process: hence >=)
    started = delta("zixly_jobs_started_total", workflow="echo")
    assert started >= 2 and delta("zixly_job_duration_seconds_count", workflow="echo") >= 2
    assert delta("zixly_jobs_completed_total", workflow="echo") >= 1
    assert delta("zixly_jobs_failed_total", workflow="echo") == 1
    assert delta("zixly_tenant_jobs_total", tenant=t.slug, status="completed") >= 1
    assert delta("zixly_tenant_jobs_total", tenant=t.slug, status="failed") == 1
    assert delta("flask_http_request_total", method="POST", status="202") >= 2
    assert delta("flask_http_request_duration_seconds_count", url_rule="/v1/jobs", method="POST") == 2
    # the label rule: no histogram carries a tenant label
    for (name, lbls) in after:
        if name.endswith(("_bucket", "_count", "_sum")):
            assert "tenant" not in dict(lbls), name


def test_tenant_label_appears_only_on_counters():
    from prometheus_client import REGISTRY

    for family in REGISTRY.collect():
        if family.name.startswith("zixly_") and family.type != "counter":
            assert all("tenant" not in s.labels for s in family.samples), family.name


def test_metrics_token_protects_the_endpoint(settings):
    try:
        guarded = create_app(dataclasses.replace(settings, metrics_token="scrape-secret")).test_client()
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "scrape-secret"}):
            r = guarded.get("/metrics", headers=headers)
            assert r.status_code == 401 and r.content_type == "application/problem+json"
            assert "tenant" not in r.get_data(as_text=True)
        assert guarded.get("/metrics", headers={"Authorization": "Bearer scrape-secret"}).status_code == 200
    finally:
        bootstrap.init(settings)


@pytest.mark.parametrize("public", [False, True])
def test_without_a_token_metrics_are_refused_unless_explicitly_public(settings, make_tenant, public):
    make_tenant("metricslabel")  # so that there is a tenant label to leak
    try:
        client = create_app(dataclasses.replace(settings, metrics_token=None, metrics_public=public)).test_client()
        client.get("/health")
        r = client.get("/metrics", headers={"Authorization": "Bearer anything"})
        if public:
            assert r.status_code == 200 and "flask_http_request" in r.get_data(as_text=True)
        else:
            assert r.status_code == 403 and r.get_json()["type"].endswith("/metrics-not-public")
            assert "ZIXLY_METRICS_TOKEN" in r.get_json()["detail"]
    finally:
        bootstrap.init(settings)


def test_metrics_are_private_by_default_in_settings_from_the_environment(monkeypatch, settings):
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    monkeypatch.delenv("ZIXLY_METRICS_PUBLIC", raising=False)
    assert Settings.from_env().metrics_public is False
    monkeypatch.setenv("ZIXLY_METRICS_PUBLIC", "true")
    assert Settings.from_env().metrics_public is True


def test_gunicorn_workers_are_aggregated_in_one_scrape(settings, tmp_path):
    """Two gunicorn worker processes each count their requests; /metrics shows the sum of both."""
    port, mp = free_port(), tmp_path / "prom"
    env = dict(os.environ, DATABASE_URL=settings.database_url, REDIS_URL=settings.redis_url,
               ZIXLY_JWT_PUBLIC_KEY_FILE=settings.jwt_public_key_file, ZIXLY_DATA_KEYS=settings.data_keys,
               PROMETHEUS_MULTIPROC_DIR=str(mp), ZIXLY_BIND=f"127.0.0.1:{port}", WEB_CONCURRENCY="2",
               ZIXLY_THREADS="2", ZIXLY_LOG_LEVEL="WARNING", ZIXLY_METRICS_TOKEN="test-metrics-token")
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "python:api.gunicorn_conf", "api.wsgi:app"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.2)
        pids, n = set(), 0

        def hit():
            nonlocal n
            with requests.Session() as s:
                for _ in range(25):
                    r = s.get(f"{base}/health", timeout=5, headers={"Connection": "close"})
                    assert r.status_code == 200
        for _round in range(8):
            threads = [threading.Thread(target=hit) for _ in range(4)]
            [t.start() for t in threads]
            [t.join() for t in threads]
            n += 100
            pids = {f.name.split("_")[-1] for f in mp.glob("counter_*.db")}
            if len(pids) >= 2:
                break
        assert len(pids) >= 2, "both gunicorn workers should have served requests"
        snap = samples(requests.get(f"{base}/metrics", timeout=5, headers=METRICS_AUTH).text)
        served = value(snap, "flask_http_request_duration_seconds_count", url_rule="/health")
        assert served >= n  # the ready-probe requests count too
        assert served <= n + 400
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def test_webhook_ingress_has_its_own_budget(settings, make_tenant):
    limited = create_app(dataclasses.replace(settings, webhook_rate_limit="5/minute")).test_client()
    t = make_tenant("hooklim")  # free plan: 60 requests a minute for the API
    secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
    with tenant_context(t.ref):
        _, token = store.create_connection(provider="custom", webhook_secrets=[secret])
    for _ in range(60):
        assert limited.get("/v1/tenant", headers=t.headers).status_code == 200
    assert limited.get("/v1/tenant", headers=t.headers).status_code == 429
    codes = []
    for i in range(6):
        body = json.dumps({"type": "x", "n": i}).encode()
        codes.append(limited.post(f"/v1/hooks/{token}", data=body,
                                  headers=standard_sign(secret, body, f"msg_{i}_{uuid.uuid4().hex}")).status_code)
    assert codes == [200] * 5 + [429]  # the tenant's spent API budget did not stop them; their own limit did
    # Zixly's own app-level hook carries every tenant's events: no shared budget there (verified by signature)
    xero_key = "hooklim-xero-key-" + "k" * 20
    app_level = create_app(dataclasses.replace(settings, webhook_rate_limit="5/minute",
                                               app_webhook_secrets={"xero": (xero_key,)})).test_client()
    body = json.dumps({"events": [], "firstEventSequence": 0, "lastEventSequence": 0, "entropy": "x"}).encode()
    signature = base64.b64encode(hmac.new(xero_key.encode(), body, hashlib.sha256).digest()).decode()
    assert {app_level.post("/v1/hooks/apps/xero", data=body, headers={"x-xero-signature": signature}).status_code
            for _ in range(8)} == {200}
    rejections = {dict(lbls)["scope"] for (n, lbls) in scrape(limited) if n == "zixly_rate_limit_rejections_total"}
    assert {"tenant", "webhook"} <= rejections <= {"tenant", "principal", "webhook", "other", "auth-failure"}


def test_rate_limit_headers_both_styles(client, make_tenant):
    t = make_tenant("hdr")
    r = client.get("/v1/tenant", headers=t.headers)
    assert r.headers["X-RateLimit-Limit"] == r.headers["RateLimit-Limit"] == "60"
    assert int(r.headers["RateLimit-Remaining"]) == int(r.headers["X-RateLimit-Remaining"])
    # seconds until the window frees a slot (flask-limiter rounds its epoch reset up by one second)
    assert 0 <= int(r.headers["RateLimit-Reset"]) <= 61


@pytest.fixture()
def json_logs():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield stream
    root.removeHandler(handler)
    root.setLevel(old_level)


def test_logs_are_json_carry_request_and_job_ids_and_never_secrets(client, make_tenant, json_logs):
    from celery.contrib.testing.worker import start_worker

    import workers.jobs  # noqa: F401  (registers run_job on the app)
    from core.platform.queue import celery_app

    t = make_tenant("logs")
    key = client.post("/v1/api-keys", json={"name": "ci", "role": "EDITOR"}, headers=t.headers).get_json()["secret"]
    secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
    created = client.post("/v1/connections", json={"provider": "custom", "name": "own events",
                                                    "webhook_secret": secret}, headers=t.headers).get_json()
    token = created["webhook"]["url"].rsplit("/", 1)[-1]
    marker = f"body-marker-{uuid.uuid4().hex}"
    body = json.dumps({"type": "x", "note": marker}).encode()
    assert client.post(f"/v1/hooks/{token}", data=body,
                       headers=standard_sign(secret, body, f"msg_{uuid.uuid4().hex}")).status_code == 200
    rid = f"req-{uuid.uuid4().hex[:12]}"
    with start_worker(celery_app, pool="solo", concurrency=1, perform_ping_check=False, shutdown_timeout=10):
        r = client.post("/v1/jobs", json={"workflow": "echo", "input": {"k": 1}},
                        headers={"X-API-Key": key, "X-Request-ID": rid})
        assert r.status_code == 202 and r.headers["X-Request-ID"] == rid
        job_id = r.get_json()["id"]
        deadline = time.monotonic() + 30
        while client.get(f"/v1/jobs/{job_id}", headers=t.headers).get_json()["status"] != "COMPLETED":
            assert time.monotonic() < deadline
            time.sleep(0.1)
    lines = [json.loads(line) for line in json_logs.getvalue().splitlines() if line.strip()]
    assert lines and all({"time", "level", "tenant", "request_id", "job_id", "event"} <= set(d) for d in lines)
    finished = [d for d in lines if d["event"] == "job.finished" and d["job_id"] == job_id]
    assert finished and finished[0]["request_id"] == rid and finished[0]["tenant"] == t.slug
    assert any(d["event"] == "request" and d["request_id"] == rid and d["route"] == "/v1/jobs" for d in lines)
    text = json_logs.getvalue()
    for leaked in (t.admin_key, key, secret, token, marker):
        assert leaked not in text


def test_the_code_exports_every_metric_that_alerts_and_dashboards_use(app):
    """prometheus/metric_names.txt is what alerts.yml and the dashboards may use (checked in tests/deploy);
    here: the code defines each name with that type and those labels."""
    from prometheus_client import REGISTRY

    from core.platform import metrics
    from core.platform.metrics import QueueDepthCollector

    defined = {}
    for obj in vars(metrics).values():
        if hasattr(obj, "_labelnames") and hasattr(obj, "_type"):
            suffix = "_total" if obj._type == "counter" else ""
            defined[obj._name + suffix] = (obj._type, tuple(obj._labelnames))
    for family in QueueDepthCollector([])._sample():
        defined[family.name] = (family.type, ("queue",))
    for name, collector in list(REGISTRY._names_to_collectors.items()):
        if name.startswith("flask_http_request") and hasattr(collector, "_labelnames"):
            defined[collector._name + ("_total" if collector._type == "counter" else "")] = (
                collector._type, tuple(collector._labelnames))
    wanted = [line.split() for line in (Path(ROOT) / "prometheus" / "metric_names.txt").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    assert wanted
    for name, kind, labels in wanted:
        assert name in defined, f"{name} is used by alerts/dashboards but the code does not export it"
        assert defined[name][0] == kind, name
        assert sorted(defined[name][1]) == sorted([] if labels == "-" else labels.split(",")), name
