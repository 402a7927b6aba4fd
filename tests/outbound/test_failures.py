"""When things go wrong: dead letters after the last attempt (and replay), SQS unreachable when a write is
requested (the relay), and a consumer killed in the middle of a call."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from core.outbound import queues, writes
from core.outbound import service as outbound
from core.platform import runtime, signals
from core.platform.models import AuditEntry
from tenancy.context import tenant_context
from tenancy.db import tenant_session
from tests.outbound.conftest import MAX_RECEIVES, deal, deal_patches, wait_until


def note(tenant, deal_id, text):
    return writes.request(provider="hubspot", connection_id=uuid.UUID(tenant.connections["hubspot"]),
                            record_key=f"deal:{deal_id}", operation="add_note",
                            args={"body": text, "deal_id": deal_id}, dedup_key=f"note:{uuid.uuid4()}")


def notes_about(sim, text):
    return [n for n in sim.provider("hubspot").notes.values() if n["properties"].get("hs_note_body") == text]


def test_a_write_that_keeps_failing_is_dead_after_the_last_attempt_and_replay_delivers_it(
        app, tenant, sim, consumers):
    client, deal_id, text = app.test_client(), deal(sim), f"paid {uuid.uuid4().hex[:6]}"
    heard = []
    sim.force_error("hubspot", 503, count=MAX_RECEIVES)
    consumers(1)
    with signals.delivery_dead_lettered.connected_to(lambda sender, **kw: heard.append(kw)):
        with tenant_context(tenant.ref):
            ident = note(tenant, deal_id, text)
            dead = writes.wait(ident, timeout=30)
            wait_until(lambda: heard, timeout=5)  # the signal goes out just after the row is committed dead
    assert dead.status == "dead" and dead.attempts == MAX_RECEIVES and dead.response_status == 503
    assert "out of attempts" in dead.last_error and "Transient" in dead.last_error
    assert notes_about(sim, text) == []
    assert heard and heard[-1]["delivery_id"] == ident and heard[-1]["tenant"].slug == tenant.slug
    listed = client.get("/v1/deliveries?status=dead&provider=hubspot", headers=tenant.headers).get_json()
    assert str(ident) in [d["id"] for d in listed["items"]]

    r = client.post(f"/v1/deliveries/{ident}/replay", headers=tenant.headers)
    assert r.status_code == 202 and r.get_json()["status"] == "queued"
    with tenant_context(tenant.ref):
        replayed = writes.wait(ident, timeout=20)
        with tenant_session() as s:
            audit = s.scalar(select(AuditEntry).where(AuditEntry.target_id == str(ident)))
    assert replayed.status == "delivered" and replayed.replays == 1 and replayed.attempts == 1
    assert len(notes_about(sim, text)) == 1
    assert audit.action == "delivery.replayed" and audit.details["was"] == "dead"
    again = client.post(f"/v1/deliveries/{ident}/replay", headers=tenant.headers)
    assert again.status_code == 409 and again.content_type == "application/problem+json"


def test_writes_requested_while_sqs_is_unreachable_are_relayed_later_in_order(tenant, sim, consumers, sqs_down):
    deal_id = deal(sim)
    def update(n):
        return writes.request(provider="hubspot", connection_id=uuid.UUID(tenant.connections["hubspot"]),
                                record_key=f"deal:{deal_id}", operation="update_deal",
                                args={"deal_id": deal_id, "properties": {"amount": str(n)}},
                                dedup_key=f"relay:{deal_id}:{n}")

    with tenant_context(tenant.ref):
        ids = [update(0), update(1)]  # accepted: committed, not sent
        assert all(outbound.get_delivery(i).sent_at is None for i in ids)
        sqs_down["now"] = False  # SQS is back (and the breaker has cooled down) …
        queues.publisher.reset()
        ids.append(update(2))  # … but this one waits behind the two unsent writes to the same deal
        assert outbound.get_delivery(ids[2]).sent_at is None
        assert outbound.relay() == 0  # fresh rows are left to their request for a while
        from workers.outbound import relay_all_outbound

        assert relay_all_outbound(min_age=0)[tenant.slug] == 3  # the beat task, every tenant
        consumers(1)
        assert [writes.wait(i, timeout=20).status for i in ids] == ["delivered"] * 3
    assert [p["amount"] for p in deal_patches(sim, deal_id)] == ["0", "1", "2"]


def start_consumer(settings, sim, log_path):
    """`zixly outbound` for the Xero queue, as its own process."""
    env = dict(os.environ, DATABASE_URL=settings.database_url, REDIS_URL=settings.redis_url,
               AWS_ENDPOINT_URL=settings.aws_endpoint_url, ZIXLY_DATA_KEYS=settings.data_keys,
               ZIXLY_PROVIDER_SIMULATOR_URL=sim.url, ZIXLY_LOG_FORMAT="text",
               ZIXLY_OUTBOUND_QUEUE_PREFIX=settings.outbound_queue_prefix, ZIXLY_OUTBOUND_QUOTAS="xero=1000/1",
               ZIXLY_XERO_CLIENT_ID=settings.provider_credentials["xero"][0],
               ZIXLY_XERO_CLIENT_SECRET=settings.provider_credentials["xero"][1])
    zixly = Path(sys.executable).with_name("zixly")
    with open(log_path, "w") as log:
        return subprocess.Popen([str(zixly), "outbound", "--threads", "1", "--wait-seconds", "1", "--providers",
                                 "xero"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def request_invoice(sim, tenant, reference):
    org = sim.provider("xero").organisations[next(iter(sim.provider("xero").organisations))]
    contact = next(iter(org.contacts.values()))
    return org, writes.request(
        provider="xero", connection_id=uuid.UUID(tenant.connections["xero"]), record_key=reference,
        operation="create_invoice", dedup_key=reference,
        args={"invoice": {"Type": "ACCREC", "Contact": {"ContactID": contact["ContactID"]}, "Reference": reference,
                          "LineItems": [{"Description": "Order", "Quantity": 2, "UnitAmount": 25}]}})


def wait_mid_call(sim, ident, proc):
    """The delayed call has reached the simulator (its fault is used up): the consumer is waiting for it."""
    wait_until(lambda: all(f.count <= 0 for f in sim._faults.pending.get("xero", [])), timeout=30)
    assert outbound.get_delivery(ident).status == "sending" and proc.poll() is None


def test_a_consumer_killed_mid_call_is_replaced_and_the_write_happens_once(
        outbound_settings, tenant, sim, consumers, tmp_path):
    """SIGKILL while the provider is answering: the call completes at the provider, nothing is recorded, the
    message comes back after its visibility timeout, and the second attempt carries the same idempotency key."""
    reference = f"KILL-{uuid.uuid4().hex[:8]}"
    proc = start_consumer(outbound_settings, sim, tmp_path / "consumer.log")
    try:
        sim.force_delay("xero", 3.0, count=1)
        with tenant_context(tenant.ref):
            org, ident = request_invoice(sim, tenant, reference)
            wait_mid_call(sim, ident, proc)
            os.killpg(proc.pid, signal.SIGKILL)  # in the middle of the provider's three-second answer
            proc.wait(10)
            consumers(1, providers=("xero",))
            row = writes.wait(ident, timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert row.status == "delivered" and row.attempts == 2, (tmp_path / "consumer.log").read_text()[-2000:]
    made = [i for i in org.invoices.values() if i["Reference"] == reference]
    assert len(made) == 1 and row.response["InvoiceID"] == made[0]["InvoiceID"]
    keys = [c.headers.get("Idempotency-Key") for c in sim.calls("xero") if c.method == "PUT"
            and reference in c.body.decode()]
    assert len(keys) == 2 and keys[0] == keys[1] == f"zixly-{ident}"


def test_sigterm_lets_the_delivery_in_hand_finish(outbound_settings, tenant, sim, tmp_path):
    reference = f"TERM-{uuid.uuid4().hex[:8]}"
    proc = start_consumer(outbound_settings, sim, tmp_path / "consumer.log")
    try:
        sim.force_delay("xero", 2.0, count=1)
        with tenant_context(tenant.ref):
            org, ident = request_invoice(sim, tenant, reference)
            wait_mid_call(sim, ident, proc)
            os.killpg(proc.pid, signal.SIGTERM)
            assert proc.wait(30) == 0, (tmp_path / "consumer.log").read_text()[-2000:]
            row = outbound.get_delivery(ident)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert (row.status, row.attempts) == ("delivered", 1)
    assert len([i for i in org.invoices.values() if i["Reference"] == reference]) == 1
    assert "outbound consumer stopped" in (tmp_path / "consumer.log").read_text()


def test_relay_min_age_is_respected(tenant):
    with tenant_context(tenant.ref):
        assert outbound.relay(min_age=timedelta(hours=1)) == 0
    assert runtime.settings().outbound_queue_prefix != "zixly"  # the suite never touches the real queue names
