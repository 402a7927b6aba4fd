"""Requesting writes and delivering them: end to end through moto and the simulators, idempotent requests,
outcomes recorded on the row, permanent failures, and PostgreSQL (not SQS) deciding that a write happened."""
from __future__ import annotations

import uuid

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, select

from core.outbound import queues, writes
from core.outbound import service as outbound
from core.outbound.models import Delivery
from core.platform.errors import Invalid
from tenancy.context import tenant_context
from tenancy.db import tenant_session
from tests.outbound.conftest import deal, deal_patches, wait_until


def request_update(tenant, deal_id, stage, key=None, **extra):
    return writes.request(provider="hubspot", connection_id=uuid.UUID(tenant.connections["hubspot"]),
                            record_key=f"deal:{deal_id}", operation="update_deal",
                            args={"deal_id": deal_id, "properties": {"dealstage": stage}},
                            dedup_key=key or f"test:{uuid.uuid4()}", **extra)


def counted(provider, status) -> float:
    return REGISTRY.get_sample_value("zixly_deliveries_total", {"provider": provider, "status": status}) or 0.0


def test_a_requested_write_reaches_the_provider_and_its_answer_is_kept(tenant, sim, consumers):
    deal_id = deal(sim)
    before = counted("hubspot", "delivered")
    consumers(1)
    with tenant_context(tenant.ref):
        update = request_update(tenant, deal_id, "closedwon")
        note = writes.request(provider="hubspot", connection_id=uuid.UUID(tenant.connections["hubspot"]),
                                record_key=f"deal:{deal_id}", operation="add_note",
                                args={"body": "Invoice INV-0042 paid: 1,500.00 NZD", "deal_id": deal_id},
                                dedup_key=f"note:{uuid.uuid4()}")
        done = writes.wait(note, timeout=20)
        first = outbound.get_delivery(update)
    assert (first.status, done.status) == ("delivered", "delivered")
    assert first.sent_at and first.delivered_at and first.attempts == 1 and first.last_error is None
    assert first.response_status == 200 and first.response["properties"]["dealstage"] == "closedwon"
    assert done.response_status == 201 and done.response["id"]  # a workflow reads the created note's id here
    assert sim.provider("hubspot").deals[deal_id]["properties"]["dealstage"] == "closedwon"
    note_row = sim.provider("hubspot").notes[done.response["id"]]
    assert note_row["properties"]["hs_note_body"].startswith("Invoice INV-0042")
    assert counted("hubspot", "delivered") == before + 2


def test_requesting_twice_with_one_dedup_key_is_one_delivery(tenant, sim, consumers):
    deal_id = deal(sim)
    with tenant_context(tenant.ref):
        first = request_update(tenant, deal_id, "qualifiedtobuy", key=f"same:{deal_id}")
        again = request_update(tenant, deal_id, "qualifiedtobuy", key=f"same:{deal_id}")
        assert first == again
        consumers(1)
        writes.wait(first, timeout=20)
        assert request_update(tenant, deal_id, "qualifiedtobuy", key=f"same:{deal_id}") == first
        with tenant_session() as s:
            same = select(func.count()).select_from(Delivery).where(Delivery.dedup_key == f"same:{deal_id}")
            assert s.scalar(same) == 1
    assert len(deal_patches(sim, deal_id)) == 1


@pytest.mark.parametrize("change, message", [
    (dict(provider="nowhere"), "no outbound queue"),
    (dict(operation="refresh"), "not a hubspot operation"),
    (dict(operation="_deal_url"), "not a hubspot operation"),
    (dict(operation="create_invoice"), "not a hubspot operation"),
    (dict(args={"when": object()}), "args must be JSON"),
    (dict(args=["not", "an", "object"]), "args must be an object"),
    (dict(dedup_key=""), "dedup_key"),
    (dict(record_key="x" * 256), "record_key"),
    (dict(connection_id="not-a-uuid"), "connection_id must be a UUID"),
    (dict(connection_id=uuid.uuid4()), "is not a hubspot connection"),
    (dict(provider="xero", operation="create_invoice"), "is not a xero connection"),
])
def test_bad_requests_are_refused_and_store_nothing(tenant, change, message):
    good = dict(provider="hubspot", connection_id=uuid.UUID(tenant.connections["hubspot"]), record_key="deal:1",
                operation="update_deal", args={"deal_id": "1", "properties": {}}, dedup_key=f"bad:{uuid.uuid4()}")
    with tenant_context(tenant.ref):
        with pytest.raises(Invalid, match=message):
            writes.request(**{**good, **change})
        with tenant_session() as s:
            assert s.scalar(select(func.count()).select_from(Delivery).where(
                Delivery.dedup_key == change.get("dedup_key", good["dedup_key"]))) == 0


def test_a_refused_write_fails_at_once_and_leaves_the_queue(tenant, sim, consumers):
    consumers(1)
    with tenant_context(tenant.ref):
        missing = request_update(tenant, "404404", "closedwon")
        row = writes.wait(missing, timeout=20)
    assert row.status == "failed" and row.attempts == 1 and row.response_status == 404
    assert "NotFound" in row.last_error
    depth = queues.sqs_client().get_queue_attributes(
        QueueUrl=queues.queue_url("hubspot"),
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    assert depth == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}


def test_a_message_delivered_again_after_its_write_was_recorded_is_not_applied_again(tenant, sim, consumers,
                                                                                     monkeypatch):
    """A consumer that records the write and dies before deleting the message: SQS hands the message out
    again once it is visible; the delivery row says it is done, so the provider is not called again."""
    from workers import consumer as consumer_module

    deleted = []
    real_delete = consumer_module.Consumer._delete
    crash_once = {"armed": True}

    def dies_before_deleting(self, lease):
        if crash_once.pop("armed", False):  # the first delete never happens; the lease just ends
            self._let_go(lease)
            return
        deleted.append(lease.receipt)
        real_delete(self, lease)

    monkeypatch.setattr(consumer_module.Consumer, "_delete", dies_before_deleting)
    deal_id = deal(sim)
    before = counted("hubspot", "duplicate")
    consumers(1)
    with tenant_context(tenant.ref):
        ident = request_update(tenant, deal_id, "decisionmakerboughtin")
        writes.wait(ident, timeout=20)
    wait_until(lambda: deleted, timeout=20)  # came back after the visibility timeout, and was deleted then
    assert counted("hubspot", "duplicate") == before + 1
    assert len(deal_patches(sim, deal_id)) == 1
    with tenant_context(tenant.ref):
        assert outbound.get_delivery(ident).attempts == 1


def test_messages_that_are_not_deliveries_are_dropped_and_queue_depths_are_measured(tenant, consumers):
    from workers.consumer import depth_collector

    sqs = queues.sqs_client()
    for body in ("not json", '{"tenant": "nobody-here", "delivery": "%s", "generation": 0}' % uuid.uuid4(),
                 '{"tenant": "%s", "delivery": "%s", "generation": 0}' % (tenant.slug, uuid.uuid4())):
        sqs.send_message(QueueUrl=queues.queue_url("hubspot"), MessageBody=body,
                         MessageGroupId=f"junk-{uuid.uuid4()}", MessageDeduplicationId=str(uuid.uuid4()))
    sqs.send_message(QueueUrl=queues.queue_url("xero", dead=True), MessageBody="junk", MessageGroupId="junk",
                     MessageDeduplicationId=str(uuid.uuid4()))
    consumer, = consumers(1, sweep_seconds=3600)  # no sweep: the dead letter stays to be counted
    depth = {(f.name, s.labels["queue"]): s.value for f in depth_collector(consumer)._sample() for s in f.samples}
    assert depth[("zixly_sqs_dead_letter_depth", queues.queue_name("xero", dead=True))] == 1
    assert ("zixly_sqs_queue_depth", queues.queue_name("hubspot")) in depth
    visible = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    wait_until(lambda: all(v == "0" for v in sqs.get_queue_attributes(
        QueueUrl=queues.queue_url("hubspot"), AttributeNames=visible)["Attributes"].values()), timeout=20)
    assert consumer.sweep_dead_letters(consumer.queues[1]) == 0  # junk in a dead-letter queue is dropped too


def test_one_message_in_two_hands_is_sent_once_and_an_abandoned_claim_is_taken_over(tenant, sim, sqs_down):
    """SQS delivers at least once (and moto's receive has no lock): a second consumer holding the same message
    while the first is mid-call leaves it alone; a claim older than the visibility timeout was abandoned."""
    import threading
    from datetime import timedelta

    from sqlalchemy import update

    from core.outbound import delivery
    from tenancy.db import tenant_transaction

    deal_id = deal(sim)
    with tenant_context(tenant.ref):
        ident = request_update(tenant, deal_id, "presentationscheduled")
        body = queues.message_body(tenant.slug, outbound.get_delivery(ident))
    sim.force_delay("hubspot", 1.5, count=1)
    first = []
    worker = threading.Thread(target=lambda: first.append(delivery.deliver(body, hold=lambda s: True, in_flight=3)))
    worker.start()
    with tenant_context(tenant.ref):
        wait_until(lambda: outbound.get_delivery(ident).status == "sending")
    second = delivery.deliver(body, hold=lambda s: True, in_flight=3)
    worker.join(10)
    assert (first[0].status, second.status, second.delete, second.delay) == ("delivered", "paced", False, 3)
    assert delivery.deliver(body, hold=lambda s: True, in_flight=3).status == "duplicate"
    assert len(deal_patches(sim, deal_id)) == 1

    with tenant_context(tenant.ref):  # a consumer died mid-call long ago: its claim does not block the retry
        with tenant_transaction() as s:
            s.execute(update(Delivery).where(Delivery.id == ident).values(
                status="sending", updated_at=func.now() - timedelta(seconds=10)))
        assert delivery.deliver(body, hold=lambda s: True, in_flight=3).status == "delivered"
        assert outbound.get_delivery(ident).attempts == 2


def test_a_groups_next_write_does_not_wait_out_a_long_poll(tenant, sim, consumers):
    """The second write to a record, sent just after the first was delivered, is picked up by the short poll
    that follows the freed group: not left for the long poll that began while the group was locked (moto keeps
    the group locked for that whole poll). Without the follow-up the note would wait the full 8 s poll."""
    deal_id = deal(sim)
    consumers(1, wait_seconds=8, providers=("hubspot",))
    with tenant_context(tenant.ref):
        assert writes.wait(request_update(tenant, deal_id, "closedwon"), timeout=20).status == "delivered"
        note = writes.request(provider="hubspot", connection_id=uuid.UUID(tenant.connections["hubspot"]),
                                record_key=f"deal:{deal_id}", operation="add_note",
                                args={"body": "Invoice INV-0043 paid", "deal_id": deal_id},
                                dedup_key=f"note:{uuid.uuid4()}")
        assert writes.wait(note, timeout=4).status == "delivered"
