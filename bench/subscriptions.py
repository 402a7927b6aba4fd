"""`make bench` subscriptions: deliveries per second to a local receiver with N Celery worker processes on the
`webhooks` queue, and the latency an event's commit adds until the receiver's 2xx (p50/p95) on an idle system.

Events are recorded as producers do (core.events.recorder, in a tenant transaction, published after commit); the
clock of one event starts just before its commit and stops when the receiver has read the request (same
machine, same clock). Every delivery is signed and the receiver checks each one with `standardwebhooks`; the run
then checks that every message arrived (duplicates are counted, not hidden).

Two rates: `live`, while 4 producer threads record the events (bounded by how fast they record, shown beside it),
and `drain`, a backlog recorded while the workers' consumer is cancelled and then delivered (the delivery path's
own rate). Beside them the stable counts of the delivery path, in this process without Celery: SQL statements
and round trips, Redis commands and Python function calls per delivery (cProfile), with the top call sites; and
the floor: the bare receiver's rate with the same HTTP client (connectors.destinations.post), signed bodies, as
many processes as workers and no database.
"""
from __future__ import annotations

import cProfile
import dataclasses
import io
import multiprocessing
import pstats
import shutil
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from bench.jobs_e2e import child_env, progress_line, spawn, stop_group

LATENCY_EVENTS = 100
PRODUCERS = 4


class _Receiver:
    """Keep-alive HTTP/1.1 receiver answering 204; notes when each webhook-id first arrived and verifies it."""

    def __init__(self):
        from standardwebhooks.webhooks import Webhook

        self.first: dict[str, float] = {}
        self.arrivals = self.unverified = 0
        self.webhook: Webhook | None = None
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                at = time.time()
                try:
                    receiver.webhook.verify(raw, {k.lower(): v for k, v in self.headers.items()})
                    ok = True
                except Exception:
                    ok = False
                with receiver._lock:
                    receiver.arrivals += 1
                    receiver.unverified += 0 if ok else 1
                    receiver.first.setdefault(self.headers.get("webhook-id", ""), at)
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks"

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def _record(ref, n: int) -> tuple[list[str], float]:
    """Record one event per transaction; answers the message ids and when the last commit started."""
    from sqlalchemy import select

    from core.events import catalogue, recorder
    from core.events.models import SubscriptionMessage
    from tenancy.context import tenant_context
    from tenancy.db import tenant_transaction

    ids, committed = [], 0.0
    with tenant_context(ref):
        for _ in range(n):
            with tenant_transaction() as session:
                recorder.record(session, catalogue.CONNECTION_CONNECTED, {"connection_id": None, "provider": "bench"})
                ids += [str(i) for i in session.scalars(select(SubscriptionMessage.id).order_by(
                    SubscriptionMessage.seq.desc()).limit(1))]
                committed = time.time()  # the commit (and its publish) follow: counted in the latency
    return ids, committed


def _wait(receiver: _Receiver, ids: list[str], timeout: float, proc, on_poll=lambda n: None) -> None:
    wanted = {f"msg_{i.replace('-', '')}" for i in ids}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with receiver._lock:
            arrived = len(wanted & receiver.first.keys())
        on_poll(arrived)
        if arrived == len(wanted):
            return
        if proc.poll() is not None:
            raise RuntimeError(f"the Celery worker exited with {proc.returncode}")
        time.sleep(0.01)
    raise RuntimeError(f"only {arrived} of {len(wanted)} deliveries arrived within {timeout:.0f} s")


def _one_run(settings, ref, receiver, workers: int, deliveries: int, progress) -> dict:
    from bench.__main__ import pct

    tmp = Path(tempfile.mkdtemp(prefix="zixly-bench-webhooks-"))
    env = child_env(settings, ZIXLY_WORKER_CONCURRENCY=str(workers), ZIXLY_SUBSCRIPTIONS_ALLOW_LOOPBACK_HTTP="1",
                    ZIXLY_SUBSCRIPTION_TENANT_CONCURRENCY=str(workers))
    proc = spawn([sys.executable, "-m", "celery", "-A", "workers.app", "worker", "-Q", "webhooks",
                  "--loglevel", "WARNING"], env, tmp / "worker.log")
    try:
        warm, _ = _record(ref, workers * 2)  # every process has connected, imported and sent once
        _wait(receiver, warm, 120, proc)
        latencies = []
        for i in range(LATENCY_EVENTS):  # idle system: one event at a time
            ids, committed = _record(ref, 1)
            _wait(receiver, ids, 30, proc)
            latencies.append((receiver.first[f"msg_{ids[0].replace('-', '')}"] - committed) * 1000)
            if (i + 1) % 25 == 0:
                progress(f"webhooks x{workers}: latency", i + 1, LATENCY_EVENTS)
        before = receiver.arrivals
        results: list[list[str]] = [[] for _ in range(PRODUCERS)]
        start = time.time()
        threads = [threading.Thread(target=lambda k=k: results[k].extend(_record(ref, deliveries // PRODUCERS)[0]))
                   for k in range(PRODUCERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        ids = [i for part in results for i in part]
        recorded_s = time.time() - start
        shown = [0]

        def on_poll(n):
            if n == len(ids) or n >= shown[0] + len(ids) // 10:
                shown[0] = n
                progress(f"webhooks x{workers}: delivered", n, len(ids))

        _wait(receiver, ids, max(60.0, len(ids) / 20), proc, on_poll)
        last = max(receiver.first[f"msg_{i.replace('-', '')}"] for i in ids)
        elapsed = last - start
        drain_s = _drain(ref, receiver, proc, deliveries, workers, progress)
    except BaseException:
        print(f"subscriptions bench failed; worker log kept in {tmp}", file=sys.stderr)
        raise
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    finally:
        stop_group(proc, timeout=30)
    return {"workers": workers, "deliveries": len(ids), "elapsed_s": elapsed, "per_s": len(ids) / elapsed,
            "recorded_per_s": len(ids) / recorded_s, "p50_ms": pct(latencies, 50), "p95_ms": pct(latencies, 95),
            "duplicates": receiver.arrivals - before - len(ids) - deliveries, "drain_per_s": deliveries / drain_s}


def _drain(ref, receiver, proc, n: int, workers: int, progress) -> float:
    """Seconds the workers take to deliver a backlog of n messages recorded while their consumer was cancelled."""
    from core.platform.queue import WEBHOOKS_QUEUE, celery_app

    replies = celery_app.control.cancel_consumer(WEBHOOKS_QUEUE, reply=True, timeout=5)
    if not replies:
        raise RuntimeError("the worker did not answer cancel_consumer")
    time.sleep(0.5)  # a task already taken finishes
    ids, _ = _record(ref, n)
    start = time.time()
    celery_app.control.add_consumer(WEBHOOKS_QUEUE, reply=True, timeout=5)
    shown = [0]

    def on_poll(k):
        if k == n or k >= shown[0] + n // 10:
            shown[0] = k
            progress(f"webhooks x{workers}: drained", k, n)

    _wait(receiver, ids, max(60.0, n / 20), proc, on_poll)
    return max(receiver.first[f"msg_{i.replace('-', '')}"] for i in ids) - start


class _Counts:
    """SQL statements and transactions (SQLAlchemy events) and Redis commands (redis-py) while active."""

    def __init__(self):
        self.statements = self.transactions = self.redis = 0

    def __enter__(self):
        import redis
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        def statement(*args, **kwargs):
            self.statements += 1

        def commit(connection):
            if connection.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
                self.transactions += 1

        self._events = [(Engine, "before_cursor_execute", statement), (Engine, "commit", commit)]
        for target, name, fn in self._events:
            event.listen(target, name, fn)
        self._original = redis.Redis.execute_command

        def counted(client, *args, **kwargs):
            self.redis += 1
            return self._original(client, *args, **kwargs)

        redis.Redis.execute_command = counted
        return self

    def __exit__(self, *exc):
        import redis
        from sqlalchemy import event

        for target, name, fn in self._events:
            event.remove(target, name, fn)
        redis.Redis.execute_command = self._original


def _costs(ref, receiver, n: int = 200, top: int = 12) -> dict:
    """The delivery path in this process (what one Celery task runs, without Celery): each recorded message's task
    run in turn, as the workers would; counts per delivery."""
    from core.subscriptions import delivery
    from tenancy.context import tenant_context

    from core.platform import outbox

    ids, _ = _record(ref, n)
    outbox.flush_published()  # the recording's outbox rows deleted now, not counted with the deliveries
    before = receiver.arrivals
    profile = cProfile.Profile()
    with tenant_context(ref), _Counts() as counts:
        started = time.perf_counter()
        profile.enable()
        outcomes = [delivery.deliver(i) for i in ids]
        profile.disable()
        elapsed = time.perf_counter() - started
    stats = pstats.Stats(profile, stream=io.StringIO())
    sent = receiver.arrivals - before
    if sent < n:
        raise RuntimeError(f"in-process costs: {sent} of {n} delivered ({set(outcomes)})")
    stats.sort_stats("tottime")
    out = io.StringIO()
    stats.stream = out
    stats.print_stats(top)
    trips = counts.statements + 2 * counts.transactions  # BEGIN and COMMIT of a transaction are round trips too
    return {"n": n, "statements": counts.statements / n, "round_trips": trips / n,
            "redis": counts.redis / n, "calls": stats.total_calls / n, "per_s": n / elapsed,
            "outcomes": {o: outcomes.count(o) for o in set(outcomes)},
            "top": [ln for ln in out.getvalue().splitlines() if ln.strip()][-top - 1:]}


def _post_many(url: str, secret: str, n: int, queue) -> None:
    from connectors.destinations import DestinationPolicy, post
    from core.subscriptions import signing

    policy, body = DestinationPolicy(allow_loopback_http=True), b'{"type":"bench","data":{}}'
    for k in range(n):
        msg_id, stamp = f"msg_floor{k}_{multiprocessing.current_process().pid}", int(time.time())
        post(url, body, {"content-type": "application/json", "webhook-id": msg_id, "webhook-timestamp": str(stamp),
                         "webhook-signature": signing.signature_header([secret], msg_id, stamp, body)}, policy)
    queue.put(n)


def _floor(receiver, secret: str, processes: int, n: int = 1000) -> float:
    """Requests per second to the same receiver from `processes` processes with the same client, no database."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    children = [context.Process(target=_post_many, args=(receiver.url, secret, n // processes, queue))
                for _ in range(processes)]
    for child in children:  # started (interpreter up, imports done) before the clock: only the posting is timed
        child.start()
    start = time.time()
    done = sum(queue.get(timeout=300) for _ in children)
    elapsed = time.time() - start
    for child in children:
        child.join()
    return done / elapsed


def bench_subscriptions(settings, *, workers=(2, 4), deliveries: int = 2000, progress=None) -> dict:
    from core.platform.actors import Actor
    from core.subscriptions import service
    from core.tenants import service as tenants
    from tenancy.apikeys import tenant_ref
    from tenancy.context import tenant_context

    progress = progress or progress_line
    receiver = _Receiver()
    tenant, _, _ = tenants.create_tenant(slug=f"bench-webhooks-{int(time.time())}", name="Webhooks",
                                         plan="enterprise", actor=Actor("staff", "bench"))
    ref = tenant_ref(tenant)
    local = dataclasses.replace(settings, subscription_allow_loopback_http=True)
    original = service.settings
    service.settings = lambda: local  # this process subscribes a loopback receiver: the explicit setting
    try:
        with tenant_context(ref):
            _sub, secret = service.create_subscription(actor=Actor("system", "bench"), url=receiver.url,
                                                       event_types=["connection.connected"])
    finally:
        service.settings = original
    from standardwebhooks.webhooks import Webhook

    receiver.webhook = Webhook(secret)
    from bench.__main__ import _load

    load_before = _load()
    try:
        runs = [_one_run(settings, ref, receiver, n, deliveries, progress) for n in workers]
        load_runs = _load()
        floors = {n: _floor(receiver, secret, n) for n in workers}
        service.settings = lambda: local
        try:
            costs = _costs(ref, receiver)
        finally:
            service.settings = original
    finally:
        receiver.stop()
    return {"runs": runs, "unverified": receiver.unverified, "load": (load_before, load_runs), "floors": floors,
            "costs": costs}


def report(result: dict) -> list[str]:
    lines = ["", "subscriptions  signed deliveries of one tenant to a local receiver (verified with "
                 "standardwebhooks), Celery prefork workers on the webhooks queue"]
    lines.append(f"  {'workers':>8}{'live/s':>9}{'drain/s':>9}{'floor/s':>9}{'drain:floor':>12}{'p50':>9}{'p95':>9}   "
                 f"(live: while producers record; drain: a backlog; floor: same client, no DB; latency: commit -> "
                 f"receiver, one event at a time, idle)")
    base = result["runs"][0]["per_s"]
    for run in result["runs"]:
        floor = result["floors"][run["workers"]]
        lines.append(f"  {run['workers']:>8}{run['per_s']:>9.0f}{run['drain_per_s']:>9.0f}{floor:>9.0f}"
                     f"{run['drain_per_s'] / floor:>12.2f}{run['p50_ms']:>7.0f}ms{run['p95_ms']:>7.0f}ms"
                     f"   live x{run['per_s'] / base:.2f} of first; {run['deliveries']} in {run['elapsed_s']:.1f} s, "
                     f"{run['duplicates']} duplicates; producers recorded {run['recorded_per_s']:.0f}/s")
    best = max(r["drain_per_s"] for r in result["runs"])
    worst_p95 = max(r["p95_ms"] for r in result["runs"])
    lines.append(f"  goals: >= 200 deliveries/s (best {best:.0f}), p95 <= 1000 ms (worst {worst_p95:.0f} ms); "
                 f"unverified deliveries: {result['unverified']}")
    lines.append(f"  load average before / after: {result['load'][0]} / {result['load'][1]} (a shared machine's "
                 f"other work slows every run alike; compare the ratios)")
    c = result["costs"]
    lines.append(f"  per delivery (in-process, no Celery, {c['n']} messages, {c['per_s']:.0f}/s in one process): "
                 f"{c['statements']:.2f} SQL statements, {c['round_trips']:.2f} round trips, {c['redis']:.2f} Redis "
                 f"commands, {c['calls']:.0f} Python calls; task outcomes {c['outcomes']}")
    lines += ["  " + ln for ln in c["top"]]
    return lines
