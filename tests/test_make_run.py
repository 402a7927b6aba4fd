"""`make run` (= `zixly dev`) on embedded defaults: serves the API and a worker, prints what a person needs,
stops everything on Ctrl-C, and a second run reuses the data."""
import http.cookiejar
import json
import os
import re
import signal
import subprocess
import sys
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
    return proc, found


def stop_dev(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    return out


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
