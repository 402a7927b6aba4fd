"""What one webhook costs in Python, deterministically: cProfile function calls and CPU per request.

Wall times on a shared 2-core machine move by tens of percent from one run to the next; the number of Python
function calls a request makes does not (it moves only when the code does), and CPU time per request moves much
less than latency. So every change on the hook path is judged by these counts first.

The requests are built before anything is measured (a WSGI environ each, bodies unique so nothing is a
duplicate) and handed straight to the app (`app(environ, start_response)`): no HTTP client, no server, only
what the application itself does. CPU is measured twice: without the profiler (the real figure) and with it
(inflated by the profiler's own overhead, only for the call counts and the breakdown).

`make bench BENCH_ARGS="profile --top 25"` prints the per-webhook figures and the top call sites;
the ingest section prints the per-webhook figures next to its throughput.
"""
from __future__ import annotations

import cProfile
import io
import os
import pstats
import time
from collections.abc import Callable
from pathlib import Path

from werkzeug.test import EnvironBuilder

ROOT = Path(__file__).resolve().parent.parent

WARM, MEASURED = 200, 500


def environ_for(path: str, body: bytes, headers: dict) -> dict:
    return EnvironBuilder(path=path, method="POST", data=body, headers=headers,
                          base_url="http://127.0.0.1").get_environ()


def _call(app, environ: dict) -> str:
    status = []
    body = app(dict(environ), lambda s, h, exc_info=None: status.append(s))
    try:
        for _ in body:
            pass
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()
    return status[0]


def profile_requests(app, make_environs: Callable[[int], list[dict]], *, top: int = 0,
                     expect: str = "200") -> dict:
    """Call the WSGI `app` with WARM, then 2 x MEASURED fresh environs: CPU per request unprofiled, then calls and
    CPU per request under cProfile. With `top`, the `top` call sites by cumulative and by own time."""
    for environ in make_environs(WARM):
        _check(_call(app, environ), expect)
    plain, profiled = make_environs(MEASURED), make_environs(MEASURED)
    started = time.process_time()
    for environ in plain:
        _check(_call(app, environ), expect)
    cpu_plain = (time.process_time() - started) / MEASURED
    profiler = cProfile.Profile(time.process_time)  # CPU, not wall: waiting on PostgreSQL or Redis is not cost
    started = time.process_time()
    profiler.enable()
    for environ in profiled:
        _call(app, environ)
    profiler.disable()
    cpu_profiled = (time.process_time() - started) / MEASURED
    stats = pstats.Stats(profiler)
    out = {"requests": MEASURED, "calls_per_request": stats.total_calls / MEASURED,
           "primitive_calls_per_request": stats.prim_calls / MEASURED,
           "cpu_us_per_request": cpu_plain * 1e6, "cpu_us_profiled": cpu_profiled * 1e6}
    out["by_package"] = by_package(stats, MEASURED)
    callers = os.environ.get("ZIXLY_PROFILE_CALLERS")  # e.g. "deepcopy,__get__": who calls these, how often
    if callers:
        stream = io.StringIO()
        stats.stream = stream
        for name in callers.split(","):
            stats.print_callers(name)
        out["callers"] = stream.getvalue()
    if top:
        out["top_cumulative"] = _top(stats, "cumulative", top)
        out["top_own"] = _top(stats, "tottime", top)
        out["top_calls"] = _top(stats, "ncalls", top)
    return out


def profile_work(fn: Callable[[], int]) -> dict:
    """Calls and CPU per unit of work of `fn()` (which answers how many units it did) under cProfile."""
    profiler = cProfile.Profile(time.process_time)
    started = time.process_time()
    profiler.enable()
    units = fn()
    profiler.disable()
    cpu = time.process_time() - started
    stats = pstats.Stats(profiler)
    return {"units": units, "calls_per_unit": stats.total_calls / max(units, 1),
            "cpu_us_per_unit_profiled": cpu * 1e6 / max(units, 1),
            "by_package": by_package(stats, max(units, 1))}


def _package(filename: str) -> str:
    if "site-packages/" in filename:
        return filename.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    if filename.startswith(str(ROOT)):
        return "zixly:" + filename[len(str(ROOT)) + 1:].split("/", 1)[0].removesuffix(".py")
    if filename == "~":
        return "builtins"
    return "stdlib"


def by_package(stats: pstats.Stats, requests: int) -> list[tuple[str, float, float]]:
    """(package, calls per request, own CPU us per request), most calls first: where the calls are made."""
    totals: dict[str, list[float]] = {}
    for (filename, _, _), (_, calls, own, _, _) in stats.stats.items():
        entry = totals.setdefault(_package(filename), [0, 0.0])
        entry[0] += calls
        entry[1] += own
    return sorted(((name, calls / requests, own * 1e6 / requests) for name, (calls, own) in totals.items()),
                  key=lambda row: -row[1])


def _check(status: str, expect: str) -> None:
    if not status.startswith(expect):
        raise RuntimeError(f"profiled webhook answered {status}, not {expect}")


def _top(stats: pstats.Stats, key: str, n: int) -> str:
    stream = io.StringIO()
    stats.stream = stream
    stats.sort_stats(key).print_stats(n)
    lines = stream.getvalue().splitlines()
    start = next((i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls")), 0)
    return "\n".join(line for line in lines[start:] if line.strip())


def per_request_line(profile: dict) -> str:
    return (f"{profile['calls_per_request']:.0f} Python function calls per webhook (cProfile, deterministic; goal "
            f"<= 1,500), {profile['cpu_us_per_request']:.0f} us CPU per webhook in the app (unprofiled)")


def report(profile: dict) -> list[str]:
    lines = ["", f"hook profile  {profile['requests']} signed Xero webhooks (1 event) straight into the WSGI app",
             f"  {per_request_line(profile)}",
             f"  under the profiler: {profile['cpu_us_profiled']:.0f} us CPU per webhook"]
    lines.append("  calls and own CPU per webhook by package:")
    lines += [f"    {name:28}{calls:>8.0f} calls{own:>8.0f} us" for name, calls, own in profile["by_package"][:14]]
    if "callers" in profile:
        lines += ["", profile["callers"]]
    fan = profile.get("fan_out")
    if fan:
        lines += [f"  behind the answer, the inbox processor: {fan['calls_per_unit']:.0f} calls and "
                  f"{fan['cpu_us_per_unit']:.0f} us CPU per delivery unprofiled ({fan['units']} deliveries in "
                  f"batches of {fan['batch']}: event, echo job, outbox row, task published); by package:"]
        lines += [f"    {name:28}{calls:>8.0f} calls{own:>8.0f} us" for name, calls, own in fan["by_package"][:10]]
    for key, title in (("top_cumulative", "by cumulative time"), ("top_own", "by own time"),
                       ("top_calls", "by number of calls")):
        if key in profile:
            lines += ["", f"  top call sites {title} (totals over {profile['requests']} webhooks):", profile[key]]
    return lines
