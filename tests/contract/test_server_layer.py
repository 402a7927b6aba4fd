"""What gunicorn answers itself (over-long request lines and headers, requests that are not HTTP) is a problem
document with an X-Request-ID, like every answer of the app: checked on a real gunicorn started as `make run`,
the Dockerfile and docker-compose start it (`-c python:api.gunicorn_conf`)."""
import http.client
import json
import os
import socket
import subprocess
import sys
import time

import pytest

from api.body import MAX_JSON_DEPTH
from tests.conftest import ROOT


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def gunicorn(app, settings, tmp_path_factory):
    port, home = _free_port(), tmp_path_factory.mktemp("gunicorn")
    env = {**os.environ, "DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url,
           "AWS_ENDPOINT_URL": settings.aws_endpoint_url, "ZIXLY_DATA_KEYS": settings.data_keys,
           "ZIXLY_JWT_PUBLIC_KEY_FILE": settings.jwt_public_key_file, "ZIXLY_HOME": str(home),
           "ZIXLY_LOG_FORMAT": "text", "PROMETHEUS_MULTIPROC_DIR": str(home / "metrics")}
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "python:api.gunicorn_conf", "--bind",
                             f"127.0.0.1:{port}", "--workers", "1", "--threads", "2", "api.wsgi:app"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=open(home / "log", "wb"))
    deadline = time.monotonic() + 60
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"gunicorn did not start: {(home / 'log').read_text()[-2000:]}")
            time.sleep(0.2)
    yield port
    proc.terminate()
    proc.wait(timeout=30)


def request(port, method, path, *, headers=None, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def raw(port, data: bytes):
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(data)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split(" ")[1]), headers, body


def assert_problem(answer, status):
    code, headers, body = answer
    assert code == status, (code, body[:300])
    assert headers["Content-Type"] == "application/problem+json", headers
    assert headers["X-Request-ID"]
    problem = json.loads(body)
    assert problem["status"] == status and problem["type"].startswith("https://") and problem["detail"]
    assert problem["request_id"] == headers["X-Request-ID"]
    return problem


def test_a_10_kb_request_line_is_a_414_problem(gunicorn):
    assert_problem(request(gunicorn, "GET", "/v1/tenant?q=" + "a" * 10_000), 414)


def test_a_20_kb_header_is_a_431_problem(gunicorn):
    assert_problem(request(gunicorn, "GET", "/v1/tenant", headers={"X-Padding": "a" * 20_000}), 431)


def test_too_many_headers_is_a_431_problem(gunicorn):
    assert_problem(request(gunicorn, "GET", "/health", headers={f"X-H{i}": "1" for i in range(150)}), 431)


def test_a_request_that_is_not_http_is_a_400_problem(gunicorn):
    assert_problem(raw(gunicorn, b"HELLO THERE\r\n\r\n"), 400)
    assert_problem(raw(gunicorn, b"GET /health HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n"), 400)


def test_the_app_still_answers_and_deep_json_is_a_400_problem(gunicorn):
    status, headers, _ = request(gunicorn, "GET", "/health")
    assert status == 200 and headers["X-Request-ID"]
    problem = assert_problem(request(gunicorn, "POST", "/v1/jobs", body="[" * 1000 + "]" * 1000,
                                     headers={"Content-Type": "application/json"}), 400)
    assert problem["type"].endswith("/json-too-deep") and str(MAX_JSON_DEPTH) in problem["detail"]
