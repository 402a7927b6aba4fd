"""The console's cost beside the API's on the same data: the jobs list as a console page (HTML, a session
cookie, the tenant checked per request) and as `GET /v1/jobs` (JSON, an API key), 50 jobs, interleaved, in
process (Flask's test client, no network); and one live tick (the job fragment an open SSE stream re-renders
each second)."""
from __future__ import annotations

import dataclasses
import secrets
import statistics
import time

N_JOBS = 50


def _timed(fn, n: int, label: str, progress) -> list[float]:
    times = []
    for i in range(n):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
        if progress:
            progress(label, i + 1, n)
    return times


def bench_console(settings, *, requests: int, progress=None) -> dict:
    from console import dev_links
    from console.app import create_app
    from console.views.jobs import _detail_html
    from core.jobs import service as jobs
    from core.platform.actors import Actor
    from core.tenants import service as tenants
    from tenancy.apikeys import tenant_ref
    from tenancy.context import tenant_context

    local = dataclasses.replace(settings, console_secret_key=secrets.token_hex(16), console_dev_login=True)
    app = create_app(local)
    tenant, _, key = tenants.create_tenant(slug=f"bench-console-{secrets.token_hex(3)}", name="Console bench",
                                           plan="enterprise", actor=Actor("staff", "bench"))
    ref = tenant_ref(tenant)
    with tenant_context(ref):
        made = [jobs.create_job(workflow="echo", data={"i": i}, actor=Actor("staff", "bench")) for i in range(N_JOBS)]
    console, api = app.test_client(), app.test_client()
    assert console.get(dev_links.issue(tenant=tenant.slug, role="VIEWER")).status_code == 303
    page = lambda: console.get("/console/jobs")  # noqa: E731
    listing = lambda: api.get("/v1/jobs?limit=50", headers={"X-API-Key": key})  # noqa: E731
    assert page().status_code == 200 and listing().status_code == 200
    console_ms, api_ms = [], []
    for i in range(requests):  # interleaved, so both sides see the same machine load
        console_ms += _timed(page, 1, "console", None)
        api_ms += _timed(listing, 1, "api", None)
        if progress:
            progress("console vs API pages", i + 1, requests)
    with tenant_context(ref), app.test_request_context(f"/console/jobs/{made[0].id}/stream"):
        tick_ms = _timed(lambda: _detail_html(made[0].id), requests, "one live tick", progress)
    return {"console": console_ms, "api": api_ms, "tick": tick_ms, "requests": requests}


def report(result: dict) -> list[str]:
    def line(name, values):
        ordered = sorted(values)
        p95 = ordered[int(0.95 * (len(ordered) - 1))]
        return f"  {name:34} median {statistics.median(values):6.2f} ms   p95 {p95:6.2f} ms"

    ratio = statistics.median(result["console"]) / statistics.median(result["api"])
    return [f"console  the jobs list, {N_JOBS} jobs, {result['requests']} requests per side, interleaved, in process",
            line("console page /console/jobs (HTML)", result["console"]),
            line("API GET /v1/jobs (JSON)", result["api"]),
            f"  ratio console/API (medians)        {ratio:.2f}x",
            line("one SSE tick (job fragment)", result["tick"]) + "   (an open job page costs this once a second)"]
