"""At delivery the SSRF guard resolves the host again, refuses a private answer, and connects to the address it
checked: a name whose answer changes after the check never sends anything to the new address. No redirects."""
from __future__ import annotations

import uuid

import pytest

import connectors.destinations
from core.subscriptions import delivery
from tenancy.context import tenant_context
from tests.subscriptions.conftest import messages_of


@pytest.fixture
def dns(monkeypatch):
    """The resolver the guard uses (not the socket layer), answering from a table that tests change."""
    answers, asked = {}, []
    real = connectors.destinations.system_resolver

    def resolve(host):
        asked.append(host)
        return list(answers[host]) if host in answers else real(host)

    monkeypatch.setattr(connectors.destinations, "system_resolver", resolve)
    return answers, asked


def send_test_event(client, tenant, sub_id):
    r = client.post(f"/v1/subscriptions/{sub_id}/test", headers=tenant.headers)
    assert r.status_code == 202
    return r.get_json()["id"]


def deliver_now(tenant, message_id):
    with tenant_context(tenant.ref):
        return delivery.deliver_holding_slot(message_id)


def test_a_name_that_changes_its_answer_is_refused_and_the_connection_goes_to_the_checked_address(
        client, make_tenant, receiver, knobs, dns):
    answers, asked = dns
    answers["rebind.test"] = ["127.0.0.1"]  # loopback: allowed only by the tests' explicit setting
    t = make_tenant("dns")
    r = client.post("/v1/subscriptions", headers=t.headers, json={
        "url": f"http://rebind.test:{receiver.port}/rebind", "event_types": ["job.failed"]})
    assert r.status_code == 201
    sub = r.get_json()
    receiver.secrets["/rebind"] = [sub["secret"]]

    first = send_test_event(client, t, sub["id"])
    calls = len(asked)
    assert deliver_now(t, first) == "delivered"
    [arrival] = receiver.at("/rebind")  # the system's DNS knows no rebind.test: only the checked address is used
    assert arrival.headers["host"] == f"rebind.test:{receiver.port}" and arrival.verified_by
    assert arrival.body["type"] == "subscription.test"
    assert asked[calls:] == ["rebind.test"]  # resolved once per send, and that answer was the one connected to

    answers["rebind.test"] = ["10.0.0.5"]  # the name now points inside
    second = send_test_event(client, t, sub["id"])
    assert deliver_now(t, second) == "retrying"
    assert len(receiver.at("/rebind")) == 1
    message = next(m for m in messages_of(t, sub["id"]) if m.id == uuid.UUID(second))
    assert "SSRF guard" in message.last_error and message.status == "pending"

    answers["rebind.test"] = ["127.0.0.1", "::ffff:169.254.169.254"]  # one bad answer among good ones
    third = send_test_event(client, t, sub["id"])
    assert deliver_now(t, third) == "retrying"
    assert len(receiver.at("/rebind")) == 1


def test_redirects_are_not_followed(client, make_tenant, receiver, knobs):
    t = make_tenant("redir")
    r = client.post("/v1/subscriptions", headers=t.headers, json={
        "url": receiver.url("/redirect"), "event_types": ["job.failed"]})
    receiver.secrets["/redirect"] = [r.get_json()["secret"]]
    receiver.scripts["/redirect"] = [(302, {"Location": receiver.url("/elsewhere")})]
    message = send_test_event(client, t, r.get_json()["id"])
    assert deliver_now(t, message) == "retrying"
    assert [a.path for a in receiver.arrivals if a.path in ("/redirect", "/elsewhere")] == ["/redirect"]


def test_settled_messages_past_the_retention_are_pruned_with_their_attempts(client, make_tenant, receiver, knobs):
    from datetime import timedelta

    from sqlalchemy import func, select, update

    from core.events.models import SubscriptionAttempt, SubscriptionMessage
    from core.subscriptions import sweeper
    from tenancy.db import tenant_session, tenant_transaction

    t = make_tenant("prune")
    r = client.post("/v1/subscriptions", headers=t.headers, json={
        "url": receiver.url("/prune"), "event_types": ["job.failed"]})
    receiver.secrets["/prune"] = [r.get_json()["secret"]]
    old, fresh, waiting = (send_test_event(client, t, r.get_json()["id"]) for _ in range(3))
    assert deliver_now(t, old) == deliver_now(t, fresh) == "delivered"
    with tenant_context(t.ref), tenant_transaction() as session:
        session.execute(update(SubscriptionMessage).where(SubscriptionMessage.id.in_([old, waiting])).values(
            updated_at=func.now() - timedelta(days=31)))
    with tenant_context(t.ref):
        assert sweeper.prune() == 1  # `waiting` is still to be sent: kept however old
        with tenant_session() as session:
            kept = set(map(str, session.scalars(select(SubscriptionMessage.id))))
            attempts = set(map(str, session.scalars(select(SubscriptionAttempt.message_id))))
    assert kept == {fresh, waiting} and attempts == {fresh}


def test_one_message_replayed_arrives_again_under_the_same_webhook_id(client, make_tenant, receiver, knobs):
    t = make_tenant("again")
    r = client.post("/v1/subscriptions", headers=t.headers, json={
        "url": receiver.url("/again"), "event_types": ["job.failed"]})
    sub = r.get_json()
    receiver.secrets["/again"] = [sub["secret"]]
    message = send_test_event(client, t, sub["id"])
    assert deliver_now(t, message) == "delivered"
    r = client.post(f"/v1/subscriptions/{sub['id']}/messages/{message}/replay", headers=t.headers)
    assert r.status_code == 202 and r.get_json() == {"count": 1}
    with tenant_context(t.ref):
        assert delivery.deliver_in_order([message]) == ["delivered"]  # what the replay task runs
    first, second = receiver.at("/again")
    assert first.msg_id == second.msg_id == f"msg_{uuid.UUID(message).hex}" and first.body == second.body
    assert second.verified_by


def test_a_secret_that_cannot_be_opened_fails_the_message_without_sending_it(client, make_tenant, receiver, knobs):
    from sqlalchemy import update

    from core.events import sealing
    from core.events.models import Subscription
    from tenancy.db import tenant_transaction

    t = make_tenant("sealed")
    r = client.post("/v1/subscriptions", headers=t.headers, json={
        "url": receiver.url("/sealed"), "event_types": ["job.failed"]})
    sub = r.get_json()
    with tenant_context(t.ref), tenant_transaction() as session:  # sealed for another row: does not open here
        session.execute(update(Subscription).where(Subscription.id == sub["id"]).values(
            secrets_sealed=sealing.seal(uuid.uuid4(), [{"secret": sub["secret"], "expires_at": None}])))
    message = send_test_event(client, t, sub["id"])
    assert deliver_now(t, message) == "refused"
    [m] = messages_of(t, sub["id"])
    assert m.status == "failed" and "cannot be opened" in m.last_error and receiver.at("/sealed") == []
    assert client.delete(f"/v1/subscriptions/{sub['id']}", headers=t.headers).status_code == 204
