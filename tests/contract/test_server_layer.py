"""What gunicorn answers itself (over-long request lines and headers, requests that are not HTTP) is a problem
document with an X-Request-ID, like every answer of the app: checked on a real gunicorn started as `make run`,
the Dockerfile and docker-compose start it (`-c python:api.gunicorn_conf`; tests/contract/gunicorn_server.py)."""
import http.client
import json
import socket
import uuid

import pytest

from api.body import MAX_JSON_DEPTH


@pytest.fixture(scope="module")
def gunicorn(gunicorn_server):
    return gunicorn_server.port


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


def test_the_app_still_answers(gunicorn):
    status, headers, _ = request(gunicorn, "GET", "/health")
    assert status == 200 and headers["X-Request-ID"]


def test_no_control_socket_is_opened(gunicorn_server):
    log = gunicorn_server.log_file.read_text()
    assert "Booting worker" in log and "Control socket" not in log, log[-2000:]


@pytest.mark.parametrize("method,path,caller", [("POST", "/v1/jobs", "tenant"), ("POST", "/v1/api-keys", "tenant"),
                                                ("PUT", "/v1/workflows/echo", "tenant"),
                                                ("POST", "/v1/staff/tenants", "staff")])
def test_deep_json_is_a_400_problem(gunicorn, make_tenant, staff_headers, method, path, caller):
    """The four endpoints the issue found answering 500 (RecursionError), with credentials that reach the body."""
    credentials = make_tenant().headers if caller == "tenant" else staff_headers
    for body in ("[" * 1000 + "]" * 1000, '{"a": ' * 1000 + "1" + "}" * 1000):
        problem = assert_problem(request(gunicorn, method, path, body=body, headers={
            "Content-Type": "application/json", "Idempotency-Key": f"deep-{uuid.uuid4()}", **credentials}), 400)
        assert problem["type"].endswith("/json-too-deep") and str(MAX_JSON_DEPTH) in problem["detail"]


def test_a_callback_at_its_schemas_bounds_reaches_the_app(gunicorn):
    """The OAuth callback's bounds (printable ASCII, RFC 6749) fit the request line even with every character
    percent-encoded: the app answers it (an unknown state), not the server's 414."""
    quoted = "%22"  # '"' on the wire: 3 bytes for one character
    query = "&".join(f"{name}={quoted * n}" for name, n in (("state", 256), ("code", 1536), ("error", 200),
                                                            ("error_description", 600)))
    problem = assert_problem(request(gunicorn, "GET", f"/v1/oauth/callback?{query}"), 400)
    assert problem["type"].endswith("/oauth-state-invalid")


def test_a_callback_with_text_outside_printable_ascii_is_a_422_problem(gunicorn):
    problem = assert_problem(request(gunicorn, "GET", "/v1/oauth/callback?state=s&code=%C3%A9t%C3%A9"), 422)
    assert "code" in json.dumps(problem)
