"""`make bench` outbound: how fast two `zixly outbound` consumers (separate processes, 4 threads each) drain a
full SQS FIFO queue (moto) against the HubSpot simulator, which enforces no limit; the per-connection token bucket
is set out of the way so the pipeline itself is measured.

1. With no consumer running, REQUESTERS threads request N deliveries (row + SQS send, as a workflow does) spread
   over DEALS records: the queue holds them all.
2. The consumers start and drain it: the rate runs from the first delivery to the last (delivered_at), and every
   delivery must have been delivered exactly once (one attempt each, one PATCH each at the simulator). Beside it,
   stable counts from the first delivery on: SQS round trips per delivery (the consumers' zixly_sqs_calls_total)
   and consumer CPU per delivery.
3. The floor of the queue itself, same moto server, same run: a scratch FIFO queue of N messages drained with bare
   receive x10 + delete_message_batch; the ratio says whether the consumers or the broker are the limit.
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


def _fill(deliveries: int, request, ref, progress) -> float:
    """Request every delivery with no consumer running (REQUESTERS threads): the queue holds them all."""
    from tenancy.context import tenant_context

    failures: list[BaseException] = []
    done = [0]

    def requester(part: range) -> None:
        try:
            with tenant_context(ref):
                for n in part:
                    request(n)
                    done[0] += 1
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    start = time.perf_counter()
    threads = [threading.Thread(target=requester, args=(range(k, deliveries, REQUESTERS),))
               for k in range(REQUESTERS)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        progress("outbound: filling the queue", min(done[0], deliveries - 1), deliveries)
        time.sleep(0.5)
    if failures:
        raise failures[0]
    progress("outbound: filling the queue", deliveries, deliveries)
    return time.perf_counter() - start


def _floor(endpoint: str, prefix: str, messages: int, progress) -> dict:
    """The queue's own floor on the same moto server: a scratch FIFO queue filled with as many messages over
    DEALS groups (send_message_batch of 10), then drained by CONSUMERS threads doing nothing but
    receive_message(MaxNumberOfMessages=10) + delete_message_batch."""
    import boto3

    sqs = boto3.client("sqs", region_name="us-east-1", endpoint_url=endpoint)
    url = sqs.create_queue(QueueName=f"{prefix}-floor.fifo", Attributes={
        "FifoQueue": "true", "VisibilityTimeout": "60"})["QueueUrl"]
    calls = {"send": 0, "receive": 0, "delete": 0}
    start = time.perf_counter()
    for base in range(0, messages, 10):
        sqs.send_message_batch(QueueUrl=url, Entries=[
            {"Id": str(i), "MessageBody": f'{{"n": {n}}}', "MessageGroupId": f"g{n % DEALS}",
             "MessageDeduplicationId": f"floor-{n}"} for i, n in enumerate(range(base, min(base + 10, messages)))])
        calls["send"] += 1
    fill_s = time.perf_counter() - start
    drained, lock = [0], threading.Lock()

    def drain() -> None:
        empty = 0
        while empty < 2:
            got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
            with lock:
                calls["receive"] += 1
            if not got:
                empty += 1
                continue
            empty = 0
            sqs.delete_message_batch(QueueUrl=url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)])
            with lock:
                calls["delete"] += 1
                drained[0] += len(got)
            progress("outbound: floor (bare SQS) drained", min(drained[0], messages - 1), messages)

    start = time.perf_counter()
    threads = [threading.Thread(target=drain) for _ in range(CONSUMERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    drain_s = time.perf_counter() - start
    progress("outbound: floor (bare SQS) drained", messages, messages)
    sqs.delete_queue(QueueUrl=url)
    return {"messages": drained[0], "fill_per_s": messages / fill_s, "drain_per_s": drained[0] / drain_s,
            "calls_per": (calls["receive"] + calls["delete"]) / max(1, drained[0])}


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sqs_calls(ports) -> dict:
    """zixly_sqs_calls_total of every consumer, summed by operation (their metrics endpoints)."""
    import requests

    total: dict[str, float] = {}
    for port in ports:
        try:
            text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        except requests.RequestException:
            continue
        for line in text.splitlines():
            if line.startswith("zixly_sqs_calls_total{"):
                op = line.split('operation="', 1)[1].split('"', 1)[0]
                total[op] = total.get(op, 0) + float(line.rsplit(" ", 1)[1])
    return total


def _delivered_span(ref) -> tuple[float, float]:
    from sqlalchemy import func, select

    from core.outbound.models import Delivery
    from tenancy.context import tenant_context
    from tenancy.db import tenant_session

    with tenant_context(ref), tenant_session() as session:
        first, last = session.execute(select(func.min(Delivery.delivered_at), func.max(Delivery.delivered_at))).one()
    return (first.timestamp(), last.timestamp()) if first else (0.0, 0.0)


def _latencies(ref, ids) -> tuple[float, float]:
    from sqlalchemy import func, select

    from core.outbound.models import Delivery
    from tenancy.context import tenant_context
    from tenancy.db import tenant_session

    latency = func.extract("epoch", Delivery.delivered_at - Delivery.queued_at) * 1000
    with tenant_context(ref), tenant_session() as session:
        p50, p95 = session.execute(select(*(func.percentile_cont(p).within_group(latency) for p in (0.5, 0.95)))
                                   .where(Delivery.id.in_(ids) if ids else True)).one()
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

        fill_s = _fill(deliveries, request, ref, progress)
        depth = _depth(queues.sqs_client(), queues.queue_url("hubspot"))
        env = child_env(local, ZIXLY_DATA_KEYS=local.data_keys, ZIXLY_PROVIDER_SIMULATOR_URL=sim.url,
                        ZIXLY_OUTBOUND_QUEUE_PREFIX=prefix, ZIXLY_OUTBOUND_QUOTAS="hubspot=1000000/1",
                        ZIXLY_HUBSPOT_CLIENT_ID=app[0], ZIXLY_HUBSPOT_CLIENT_SECRET=app[1], ZIXLY_LOG_LEVEL="WARNING")
        zixly = str(Path(sys.executable).with_name("zixly"))
        ports = [_free_port() for _ in range(CONSUMERS)]
        for i, port in enumerate(ports):
            procs.append(spawn([zixly, "outbound", "--threads", str(THREADS), "--providers", "hubspot",
                                "--metrics-port", str(port)], env, tmp / f"consumer-{i}.log"))
        deadline, shown, first = time.monotonic() + timeout, 0, None
        while True:
            counts = _statuses(ref)
            finished = sum(counts.get(s, 0) for s in outbound.FINAL)
            if finished and first is None:  # the consumers are up: count CPU and round trips from here
                first = (finished, _cpu(procs), _sqs_calls(ports))
            if finished >= shown + max(1, deliveries // 20) or finished >= deliveries:
                shown = finished
                progress("outbound: drained", min(finished, deliveries), deliveries)
            if finished >= deliveries or time.monotonic() > deadline:
                break
            if any(p.poll() is not None for p in procs):
                raise RuntimeError("a consumer exited during the benchmark")
            time.sleep(0.2)
        cpu = {k: v - first[1][k] for k, v in _cpu(procs).items()}
        calls = {k: v - first[2].get(k, 0) for k, v in _sqs_calls(ports).items()}
        counted = max(1, finished - first[0])
        first_at, last_at = _delivered_span(ref)
        elapsed = max(1e-6, last_at - first_at)
        p50, p95 = _latencies(ref, None)
        patches = sum(1 for c in sim.calls("hubspot") if c.method == "PATCH")
        floor = _floor(aws_endpoint_url, prefix, deliveries, progress)
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
    delivered = counts.get("delivered", 0)
    per_s = (delivered - 1) / elapsed if delivered > 1 else 0.0
    return {"deliveries": deliveries, "consumers": CONSUMERS, "threads": THREADS, "records": DEALS,
            "delivered": delivered, "failed": counts.get("failed", 0), "dead": counts.get("dead", 0),
            "unfinished": counts.get("queued", 0) + counts.get("sending", 0), "repeated": counts["repeated"],
            "patches": patches, "exactly_once": delivered == deliveries == patches and not counts["repeated"],
            "elapsed_s": elapsed, "per_s": per_s, "depth": depth, "fill_s": fill_s,
            "cpu": cpu, "cores": os.cpu_count(), "counted": counted, "calls": calls,
            "cpu_ms_per": 1000 * cpu["consumers"] / counted, "calls_per": sum(calls.values()) / counted,
            "floor": floor, "ratio": per_s / floor["drain_per_s"] if floor["drain_per_s"] else 0.0,
            "p50_ms": p50, "p95_ms": p95}

def report(args, result: dict) -> list[str]:
    r, f = result, result["floor"]
    calls = ", ".join(f"{op} {n / r['counted']:.2f}" for op, n in sorted(r["calls"].items()) if n)
    return [
        f"outbound  {r['deliveries']} HubSpot deal updates over {r['records']} deals, queued first (no consumer "
        f"running; {r['depth']} messages in the queue), then drained by {r['consumers']} `zixly outbound` "
        f"processes x {r['threads']} threads;",
        "  moto SQS FIFO, the simulator enforcing no limit (and the token bucket set out of the way)",
        f"  {r['per_s']:.0f} deliveries/s drained   ({r['delivered']}/{r['deliveries']} delivered, "
        f"{r['elapsed_s']:.1f} s from the first delivery to the last; the queue was filled at "
        f"{r['deliveries'] / r['fill_s']:.0f}/s)",
        f"  floor of the queue itself (same moto, same run, {f['messages']} messages, {r['consumers']} threads doing "
        f"receive x10 + delete_message_batch and nothing else): {f['drain_per_s']:.0f} messages/s "
        f"({f['calls_per']:.2f} round trips per message; send_message_batch filled it at {f['fill_per_s']:.0f}/s)"
        f";  consumers / floor = {r['ratio']:.2f}",
        f"  per delivery: {r['calls_per']:.2f} SQS round trips ({calls}), {r['cpu_ms_per']:.1f} ms consumer CPU "
        f"(counted over {r['counted']} deliveries after the first)",
        f"  CPU in that time: consumers {r['cpu']['consumers']:.1f} s, bench + simulator "
        f"{r['cpu']['bench']:.1f} s, everything else (moto, PostgreSQL, Redis, other load) "
        f"{max(0.0, r['cpu']['machine'] - r['cpu']['consumers'] - r['cpu']['bench']):.1f} s; the machine was "
        f"{100 * r['cpu']['machine'] / (r['elapsed_s'] * r['cores']):.0f}% busy ({r['cores']} cores)",
        f"  requested -> delivered (includes the wait in the filled queue): p50 {r['p50_ms']:.0f} ms   "
        f"p95 {r['p95_ms']:.0f} ms",
        f"  exactly once: {'yes' if r['exactly_once'] else 'NO'} ({r['patches']} PATCHes at the simulator, "
        f"{r['repeated']} repeated attempts, {r['failed']} failed, {r['dead']} dead, {r['unfinished']} unfinished)",
        "  reproduce: make bench BENCH_ARGS=\"outbound --deliveries 1000\"",
    ]
