"""`make bench` outbound: deliveries per second through moto's SQS with two `zixly outbound` consumers
(separate processes, 4 threads each) against the HubSpot simulator, which enforces no limit; the per-connection
token bucket is set out of the way so the pipeline itself is measured.

1. The consumers start; one delivery goes all the way through (readiness).
2. REQUESTERS threads request N deliveries (row + SQS send, as a workflow does) spread over DEALS records while
   the consumers deliver them: the clock runs from the first request to the last delivery, and every delivery
   must have been delivered exactly once (one attempt each, one PATCH each at the simulator). moto's queue
   operations slow down as its queue grows (it scans every message), so the deepest queue seen is reported.
3. With the consumers idle, LATENCY_SAMPLES deliveries one at a time: requested -> delivered latency.
"""
from __future__ import annotations

import dataclasses
import os
import secrets
import shutil
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

from bench.jobs_e2e import child_env, progress_line, spawn, stop_group

CONSUMERS, THREADS, REQUESTERS, DEALS, LATENCY_SAMPLES = 2, 4, 4, 100, 50
BASE = "https://zixly.bench"


def _connect_hubspot(settings, tenant_secret: str) -> str:
    """The OAuth dance through the API and the simulator, as an admin's browser would do it."""
    import requests

    from api.app import create_app

    client = create_app(settings).test_client()
    headers = {"X-API-Key": tenant_secret}
    started = client.post("/v1/connections", json={"provider": "hubspot", "name": "bench"}, headers=headers)
    consent = requests.get(started.get_json()["authorize_url"], allow_redirects=False, timeout=10)
    done = client.get("/v1/oauth/callback?" + urlsplit(consent.headers["Location"]).query)
    if done.status_code != 200 or done.get_json()["connection"]["status"] != "active":
        raise RuntimeError(f"could not connect HubSpot: {done.get_json()}")
    return done.get_json()["connection"]["id"]


def _statuses(ref) -> dict:
    from sqlalchemy import func, select

    from core.outbound.models import Delivery
    from tenancy.context import tenant_context
    from tenancy.db import tenant_session

    with tenant_context(ref), tenant_session() as session:
        counts = dict(session.execute(select(Delivery.status, func.count()).group_by(Delivery.status)).all())
        counts["repeated"] = session.scalar(select(func.count()).select_from(Delivery).where(Delivery.attempts != 1))
    return counts


def _cpu(procs) -> dict:
    """CPU seconds so far: the consumer processes, this process (requesters, simulator), the whole machine."""
    import psutil

    def used(proc) -> float:
        try:
            return sum(proc.cpu_times()[:2])
        except psutil.Error:
            return 0.0

    consumers = sum(used(p) for proc in procs for p in (psutil.Process(proc.pid), *psutil.Process(proc.pid)
                                                        .children(recursive=True)))
    machine = psutil.cpu_times()
    busy = sum(machine) - machine.idle - getattr(machine, "iowait", 0.0)
    return {"consumers": consumers, "bench": used(psutil.Process()), "machine": busy}


def _depth(sqs, url: str) -> int:
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"])


def _latencies(ref, ids) -> tuple[float, float]:
    from sqlalchemy import func, select

    from core.outbound.models import Delivery
    from tenancy.context import tenant_context
    from tenancy.db import tenant_session

    latency = func.extract("epoch", Delivery.delivered_at - Delivery.queued_at) * 1000
    with tenant_context(ref), tenant_session() as session:
        p50, p95 = session.execute(select(*(func.percentile_cont(p).within_group(latency) for p in (0.5, 0.95)))
                                   .where(Delivery.id.in_(ids))).one()
    return float(p50 or 0), float(p95 or 0)


def bench_outbound(settings, *, aws_endpoint_url: str, deliveries: int = 1000, progress=None,
                   timeout: float | None = None) -> dict:
    from core import bootstrap
    from core.outbound import queues, writes
    from core.outbound import service as outbound
    from core.platform import aws, runtime
    from core.platform.actors import Actor
    from core.platform.crypto import generate_key
    from core.tenants import service as tenants
    from sandbox import Simulator
    from tenancy.apikeys import tenant_ref
    from tenancy.context import tenant_context

    progress = progress or progress_line
    timeout = timeout or max(120.0, deliveries / 5)
    sim = Simulator(poll_interval=0.05).start()
    app = ("zixly-bench-hubspot", secrets.token_hex(16))
    sim.register_app("hubspot", *app, [f"{BASE}/v1/oauth/callback"])
    prefix = f"bench{secrets.token_hex(3)}"
    local = dataclasses.replace(settings, aws_endpoint_url=aws_endpoint_url, data_keys=f"bench:{generate_key()}",
                                provider_simulator_url=sim.url, provider_credentials={"hubspot": app},
                                public_base_url=BASE, outbound_queue_prefix=prefix,
                                outbound_quotas={"hubspot": "1000000/1"})
    previous = runtime.settings()
    bootstrap.init(local)
    tmp = Path(tempfile.mkdtemp(prefix="zixly-bench-outbound-"))
    procs = []
    try:
        aws.ensure_outbound_queues(queues.sqs_client(), prefix=prefix, providers=("hubspot",))
        tenant, _, secret = tenants.create_tenant(slug=f"bench-out-{secrets.token_hex(3)}", name="Outbound",
                                                  plan="enterprise", actor=Actor("staff", "bench"))
        ref, connection = tenant_ref(tenant), uuid.UUID(_connect_hubspot(local, secret))
        hubspot = sim.provider("hubspot")
        deals = [str(700_000 + n) for n in range(DEALS)]
        for deal in deals:
            hubspot._store(hubspot.deals, {"dealname": f"Deal {deal}", "amount": "0"}, object_id=deal)

        def request(n: int) -> uuid.UUID:
            deal = deals[n % DEALS]
            return writes.request(provider="hubspot", connection_id=connection, record_key=f"deal:{deal}",
                                    operation="update_deal", args={"deal_id": deal, "properties": {"amount": str(n)}},
                                    dedup_key=f"bench:{n}")

        env = child_env(local, ZIXLY_DATA_KEYS=local.data_keys, ZIXLY_PROVIDER_SIMULATOR_URL=sim.url,
                        ZIXLY_OUTBOUND_QUEUE_PREFIX=prefix, ZIXLY_OUTBOUND_QUOTAS="hubspot=1000000/1",
                        ZIXLY_HUBSPOT_CLIENT_ID=app[0], ZIXLY_HUBSPOT_CLIENT_SECRET=app[1], ZIXLY_LOG_LEVEL="WARNING")
        zixly = str(Path(sys.executable).with_name("zixly"))
        for i in range(CONSUMERS):
            procs.append(spawn([zixly, "outbound", "--threads", str(THREADS), "--providers", "hubspot"], env,
                               tmp / f"consumer-{i}.log"))
        with tenant_context(ref):  # readiness: one delivery all the way through
            warm = request(-1)
            writes.wait(warm, timeout=120)
        progress("outbound: consumers ready", 0, deliveries)
        failures: list[BaseException] = []
        requested: list[uuid.UUID] = []
        finished_requesting: list[float] = []

        def requester(part: range) -> None:
            try:
                with tenant_context(ref):
                    requested.extend(request(n) for n in part)
                finished_requesting.append(time.perf_counter())
            except BaseException as exc:  # reported by the main thread
                failures.append(exc)

        cpu_before = _cpu(procs)
        start = time.perf_counter()
        threads = [threading.Thread(target=requester, args=(range(k, deliveries, REQUESTERS),))
                   for k in range(REQUESTERS)]
        for t in threads:
            t.start()
        deadline, shown, deepest = time.monotonic() + timeout, 0, 0
        while True:
            counts = _statuses(ref)
            finished = sum(counts.get(s, 0) for s in outbound.FINAL) - 1
            deepest = max(deepest, _depth(queues.sqs_client(), queues.queue_url("hubspot")))
            if finished >= shown + max(1, deliveries // 10) or finished >= deliveries:
                shown = finished
                progress("outbound: delivered", min(finished, deliveries), deliveries)
            if finished >= deliveries or time.monotonic() > deadline or failures:
                break
            if any(p.poll() is not None for p in procs):
                raise RuntimeError("a consumer exited during the benchmark")
            time.sleep(0.2)
        elapsed = time.perf_counter() - start
        cpu = {k: v - cpu_before[k] for k, v in _cpu(procs).items()}
        for t in threads:
            t.join(timeout)
        if failures:
            raise failures[0]
        requested_s = max(finished_requesting) - start
        p50, p95 = _latencies(ref, requested)
        patches = sum(1 for c in sim.calls("hubspot") if c.method == "PATCH") - 1
        samples = []
        with tenant_context(ref):  # one at a time, consumers idle
            for n in range(LATENCY_SAMPLES):
                samples.append(request(deliveries + n))
                writes.wait(samples[-1], timeout=60)
        idle_p50, idle_p95 = _latencies(ref, samples)
    except BaseException:
        print(f"outbound bench failed; consumer logs kept in {tmp}", file=sys.stderr)
        raise
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    finally:
        for proc in procs:
            stop_group(proc, timeout=30)
        sim.stop()
        bootstrap.init(previous)
    delivered = counts.get("delivered", 0) - 1
    return {"deliveries": deliveries, "consumers": CONSUMERS, "threads": THREADS, "records": DEALS,
            "delivered": delivered, "failed": counts.get("failed", 0), "dead": counts.get("dead", 0),
            "unfinished": counts.get("queued", 0) + counts.get("sending", 0), "repeated": counts["repeated"],
            "patches": patches, "exactly_once": delivered == deliveries == patches and not counts["repeated"],
            "elapsed_s": elapsed, "per_s": delivered / elapsed, "deepest": deepest,
            "requested_per_s": deliveries / requested_s, "cpu": cpu, "cores": os.cpu_count(),
            "p50_ms": p50, "p95_ms": p95,
            "idle_p50_ms": idle_p50, "idle_p95_ms": idle_p95, "samples": LATENCY_SAMPLES}


def report(args, result: dict) -> list[str]:
    r = result
    return [
        f"outbound  {r['deliveries']} HubSpot deal updates over {r['records']} deals, requested by {REQUESTERS} "
        f"threads while {r['consumers']} `zixly outbound` processes x {r['threads']} threads deliver them;",
        "  moto SQS FIFO, the simulator enforcing no limit (and the token bucket set out of the way)",
        f"  {r['per_s']:.0f} deliveries/s   ({r['delivered']}/{r['deliveries']} delivered {r['elapsed_s']:.1f} s "
        f"after the first request; requests went in at {r['requested_per_s']:.0f}/s; deepest queue seen: "
        f"{r['deepest']} messages)",
        f"  requested -> delivered under that load: p50 {r['p50_ms']:.0f} ms   p95 {r['p95_ms']:.0f} ms;   "
        f"one at a time, consumers idle: p50 {r['idle_p50_ms']:.0f} ms   p95 {r['idle_p95_ms']:.0f} ms",
        f"  CPU in that time: consumers {r['cpu']['consumers']:.1f} s, requesters + simulator "
        f"{r['cpu']['bench']:.1f} s, everything else (moto, PostgreSQL, Redis, other load) "
        f"{max(0.0, r['cpu']['machine'] - r['cpu']['consumers'] - r['cpu']['bench']):.1f} s; the machine was "
        f"{100 * r['cpu']['machine'] / (r['elapsed_s'] * r['cores']):.0f}% busy ({r['cores']} cores)",
        f"  exactly once: {'yes' if r['exactly_once'] else 'NO'} ({r['patches']} PATCHes at the simulator, "
        f"{r['repeated']} repeated attempts, {r['failed']} failed, {r['dead']} dead, {r['unfinished']} unfinished)",
        "  reproduce: make bench BENCH_ARGS=\"outbound --deliveries 1000\"",
    ]
