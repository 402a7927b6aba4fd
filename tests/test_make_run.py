"""`make run` (= `zixly dev`) on embedded defaults: serves the API and a worker, prints what a person needs,
stops everything on Ctrl-C, and a second run reuses the data."""
import http.cookiejar
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import psutil

from devstack import free_port

BIN = Path(sys.executable).parent


def start_dev(home: Path, port: int) -> tuple[subprocess.Popen, dict]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "AWS_ENDPOINT_URL")}
    env.update(ZIXLY_HOME=str(home), PORT=str(port), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([str(BIN / "zixly"), "dev"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, cwd=Path(__file__).resolve().parent.parent)
    found, lines = {}, []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and "console_admin" not in found:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if m := re.search(r"X-API-Key: (zx_\w+_\S+)", line):
            found.setdefault("key", m.group(1))  # the first: later lines quote it inside curl examples
        if m := re.search(r"Bearer (\S+)", line):
            found.setdefault("staff", m.group(1))
        if m := re.search(r"demo admin\s+(http\S+)", line):
            found["console_admin"] = m.group(1)
    assert "staff" in found and "console_admin" in found, "".join(lines)
    found["pids"] = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
    # keep draining the output (a full pipe would block the services); stop_dev returns all of it
    proc.drain = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
    proc.drain.start()
    proc.lines = lines
    return proc, found


def stop_dev(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)
    proc.drain.join(timeout=30)
    return "".join(proc.lines)


def processes_using(home: Path, pids=()) -> list:
    left = [pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
    for p in psutil.process_iter(["cmdline", "status"]):
        try:
            if p.info["status"] != psutil.STATUS_ZOMBIE and str(home) in " ".join(p.info["cmdline"] or []):
                left.append(p)
        except psutil.Error:
            pass
    return left


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None

    def http_error_302(self, req, fp, code, msg, headers):
        return fp


def post(url, body, headers, opener=None):
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", **headers})
    with (opener or urllib.request.build_opener()).open(request, timeout=10) as resp:
        return resp.read().decode()


def get(url, headers=None, opener=None):
    request = urllib.request.Request(url, headers=headers or {})
    with (opener or urllib.request.build_opener()).open(request, timeout=10) as resp:
        return resp.status, resp.read().decode()



def test_make_run_serves_stops_cleanly_and_reuses_data(tmp_path):
    home = tmp_path / "zixly-home"
    port = free_port()
    proc, first = start_dev(home, port)
    try:
        base = f"http://127.0.0.1:{port}"
        status, body = get(f"{base}/v1/tenant", {"X-API-Key": first["key"]})
        assert status == 200 and '"slug":"demo"' in body.replace(" ", "")
        status, body = get(f"{base}/v1/staff/tenants", {"Authorization": f"Bearer {first['staff']}"})
        assert status == 200 and "demo" in body
        assert get(f"{base}/ready")[0] == 200
        # the simulated providers: connect a "Xero" with nothing but the printed key, from one "browser" (a
        # cookie jar): the consent is bound to the client that started it
        browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        created = json.loads(post(f"{base}/v1/connections", {"provider": "xero", "name": "demo books"},
                                  {"X-API-Key": first["key"]}, browser))
        consent = urllib.request.build_opener(NoRedirect).open(created["authorize_url"], timeout=10)
        callback = consent.headers["Location"]
        assert callback.startswith(f"{base}/v1/oauth/callback?")
        status, body = get(callback, opener=browser)
        assert status == 200 and json.loads(body)["connection"]["status"] in ("active", "select_account")
        # the console: the printed one-time link signs the demo admin in (plain http: no Secure cookie)
        person = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        status, body = get(first["console_admin"], opener=person)
        assert status == 200 and "Overview" in body and "demo" in body
        assert get(f"{base}/", opener=person)[0] == 200  # / leads to the console
    finally:
        out = stop_dev(proc)
    assert proc.returncode == 0, out
    time.sleep(0.5)
    assert len(first["pids"]) >= 4  # redis, moto, celery, gunicorn (+ their workers)
    assert processes_using(home, first["pids"]) == []
    proc, second = start_dev(home, port)
    try:
        assert second["key"] == first["key"]  # same data: the demo tenant and its key survived
        assert get(f"http://127.0.0.1:{port}/v1/tenant", {"X-API-Key": second["key"]})[0] == 200
    finally:
        stop_dev(proc)
    time.sleep(0.5)
    assert processes_using(home, second["pids"]) == []


def connect(base: str, key: str, provider: str) -> dict:
    """Through the simulated provider's consent, in one "browser" (a cookie jar), as the README shows."""
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    created = json.loads(post(f"{base}/v1/connections", {"provider": provider}, {"X-API-Key": key}, browser))
    consent = urllib.request.build_opener(NoRedirect).open(created["authorize_url"], timeout=10)
    conn = json.loads(get(consent.headers["Location"], opener=browser)[1])["connection"]
    if conn["status"] == "select_account":
        request = urllib.request.Request(f"{base}/v1/connections/{conn['id']}", method="PATCH",
                                         data=json.dumps({"account_id": conn["accounts"][0]["account_id"]}).encode(),
                                         headers={"X-API-Key": key, "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as resp:
            conn = json.loads(resp.read())
    assert conn["status"] == "active", conn
    return conn


def test_make_run_first_run_a_test_event_completes_the_flagship_workflow_and_logs_are_json(tmp_path):
    """The first run from the README's CLI path: connect Xero and HubSpot, enable the workflow, `zixly dev
    send-webhook xero invoice.paid`: the app-level hook verifies with the development secret `make run` set, the
    seeded customer's job completes, `echo` (opt-in) starts nothing, and the services log JSON lines."""
    home = tmp_path / "zixly-home"
    port = free_port()
    proc, found = start_dev(home, port)
    try:
        base, key = f"http://127.0.0.1:{port}", found["key"]
        headers = {"X-API-Key": key, "Content-Type": "application/json"}
        xero, hubspot = connect(base, key, "xero"), connect(base, key, "hubspot")
        request = urllib.request.Request(f"{base}/v1/workflows/xero-invoice-paid-to-hubspot", method="PUT",
                                         headers=headers, data=json.dumps({"enabled": True, "connections": {
                                             "source": xero["id"], "target": hubspot["id"]}}).encode())
        urllib.request.urlopen(request, timeout=10).close()
        assert json.loads(get(f"{base}/v1/workflows/echo", {"X-API-Key": key})[1])["enabled"] is False
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "AWS_ENDPOINT_URL")}
        sent = subprocess.run([str(BIN / "zixly"), "dev", "send-webhook", "xero", "invoice.paid"], env={
            **env, "ZIXLY_HOME": str(home)}, capture_output=True, text=True, timeout=60,
            cwd=Path(__file__).resolve().parent.parent)
        assert sent.returncode == 0, sent.stdout + sent.stderr
        result = json.loads(sent.stdout)
        assert result["status"] == 200 and result["changed"]["status"] == "PAID"  # the app hook secret is set
        deadline, jobs = time.monotonic() + 60, []
        while time.monotonic() < deadline:
            jobs = json.loads(get(f"{base}/v1/jobs", {"X-API-Key": key})[1])["items"]
            if jobs and jobs[0]["status"] in ("COMPLETED", "FAILED"):
                break
            time.sleep(0.3)
        assert [(j["workflow"], j["status"]) for j in jobs] == [("xero-invoice-paid-to-hubspot", "COMPLETED")]
        assert (home / "xero-webhook-key").stat().st_mode & 0o777 == 0o600
    finally:
        out = stop_dev(proc)
    served = out.split("Ctrl-C stops everything.", 1)[1].split("stopping …", 1)[0]
    lines = [line for line in served.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line the services wrote is a JSON object
    plain = re.compile(r"^\[\d{4}-\d\d-\d\d [^]]*\] \[\d+\] \[[A-Z]+\]")  # gunicorn's own text format
    assert not [line for line in out.splitlines() if plain.match(line)]  # before the banner too (start-up)
    assert '"logger": "gunicorn.error"' in out
    finished = [r for r in records if r.get("event") == "job.finished"]
    assert finished and finished[0]["tenant"] == "demo" and finished[0]["request_id"]
    assert {"time", "level", "logger", "tenant", "request_id", "job_id"} <= set(records[0])
