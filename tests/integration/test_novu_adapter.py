"""The Novu adapter against a local HTTP server that records requests: the exact request, and one request per
call (the SDK's own retries are off — ours are the only ones)."""
import time

import pytest

from notifications import novu
from tests.fake_novu import FakeNovu


@pytest.fixture()
def fake():
    server = FakeNovu(hang_seconds=3)
    yield server
    server.stop()


def make_request(tenant="acme"):
    to = [novu.topic(tenant, "admins"), novu.subscriber(tenant, "u-1", email="ann@acme.test", name="Ann Lee")]
    return novu.trigger_request(workflow="job-failed", tenant=tenant, to=to, payload={"job_id": "j-1"},
                                transaction_id=novu.transaction_id("7:acme", "job-failed", "job:j-1"))


def test_the_exact_request_novu_receives(fake):
    client = novu.NovuClient(api_key="nv-secret", server_url=fake.url + "/", timeout=2)
    delivered = client.trigger(make_request(), idempotency_key="zx-1-1")
    txn = novu.transaction_id("7:acme", "job-failed", "job:j-1")
    assert delivered == novu.Delivered(txn, "processed")
    [seen] = fake.requests
    assert (seen.method, seen.path) == ("POST", "/v1/events/trigger")
    assert seen.headers["authorization"] == "ApiKey nv-secret"
    assert seen.headers["content-type"] == "application/json"
    assert seen.headers["idempotency-key"] == "zx-1-1"
    assert seen.body == {
        "name": "job-failed",
        "to": [{"type": "Topic", "topicKey": "zixly_acme_admins"},
               {"subscriberId": "zixly:acme:u-1", "email": "ann@acme.test", "firstName": "Ann", "lastName": "Lee"}],
        "payload": {"job_id": "j-1"},
        "transactionId": txn,
        "context": {"tenant": "acme"},
    }


def test_transaction_ids_are_deterministic_and_distinct():
    one = novu.transaction_id("7:acme", "job-failed", "job:j-1")
    assert one == novu.transaction_id("7:acme", "job-failed", "job:j-1")
    assert len({one, novu.transaction_id("8:acme", "job-failed", "job:j-1"),
                novu.transaction_id("7:acme", "api-key-created", "job:j-1"),
                novu.transaction_id("7:acme", "job-failed", "job:j-2")}) == 4


@pytest.mark.parametrize("answer", [500, 503, 429])
def test_an_outage_answer_is_one_request_and_retryable(fake, answer):
    fake.scripts["acme"] = [answer]
    client = novu.NovuClient(api_key="k", server_url=fake.url, timeout=2)
    with pytest.raises(novu.NovuUnavailable) as caught:
        client.trigger(make_request(), idempotency_key="k-1")
    assert caught.value.status == answer and len(fake.requests) == 1


def test_a_hanging_novu_times_out_once(fake):
    fake.scripts["acme"] = ["hang"]
    client = novu.NovuClient(api_key="k", server_url=fake.url, timeout=0.4)
    started = time.monotonic()
    with pytest.raises(novu.NovuUnavailable, match="Timeout"):
        client.trigger(make_request(), idempotency_key="k-1")
    assert time.monotonic() - started < 2.0 and len(fake.requests) == 1


def test_nothing_listening_is_retryable():
    server = FakeNovu()
    url = server.url
    server.stop()
    with pytest.raises(novu.NovuUnavailable):
        novu.NovuClient(api_key="k", server_url=url, timeout=1).trigger(make_request(), idempotency_key="k-1")


@pytest.mark.parametrize("answer", [401, 404, 422])
def test_a_refusal_is_permanent(fake, answer):
    fake.scripts["acme"] = [answer]
    with pytest.raises(novu.NovuRejected) as caught:
        novu.NovuClient(api_key="k", server_url=fake.url).trigger(make_request(), idempotency_key="k-1")
    assert caught.value.status == answer


def test_a_transaction_novu_already_has_counts_as_delivered(fake):
    client = novu.NovuClient(api_key="k", server_url=fake.url)
    first = client.trigger(make_request(), idempotency_key="k-1")
    again = client.trigger(make_request(), idempotency_key="k-2")
    assert first.status == "processed" and again.status == "duplicate"
    assert again.transaction_id == first.transaction_id and len(fake.accepted) == 1


def test_no_tenant_can_name_another_tenants_topic_or_subscriber():
    # tenant "foo" naming a topic "bar-admins" must not reach tenant "foo-bar"'s admins (or users)
    assert novu.topic("foo", "bar-admins") != novu.topic("foo-bar", "admins")
    assert novu.subscriber("foo", "bar-ann")["subscriberId"] != novu.subscriber("foo-bar", "ann")["subscriberId"]
    assert novu.topic("foo-bar", "admins") == {"type": "Topic", "topicKey": "zixly_foo-bar_admins"}
