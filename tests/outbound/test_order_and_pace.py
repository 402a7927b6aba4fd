"""Order and pace: one record's writes arrive in the order they were requested with two consumers running,
different records interleave, the simulator never sees more calls per window than the bucket allows, and a
429 delays the record's writes without losing one."""
from __future__ import annotations

import uuid

from core.outbound import service as outbound
from core.outbound import writes
from tenancy.context import tenant_context
from tests.outbound.conftest import deal, deal_patches


def update(tenant, deal_id, n):
    return writes.request(provider="hubspot", connection_id=uuid.UUID(tenant.connections["hubspot"]),
                            record_key=f"deal:{deal_id}", operation="update_deal",
                            args={"deal_id": deal_id, "properties": {"amount": str(n)}},
                            dedup_key=f"order:{deal_id}:{n}")


def applied(values: list[int]) -> list[int]:
    """What the record went through: an idempotent PATCH the HTTP client repeated after a lost answer arrives
    twice in a row, which is the same update, not a reordering."""
    return [v for i, v in enumerate(values) if i == 0 or values[i - 1] != v]


def test_fifty_updates_to_one_deal_arrive_in_order_while_other_deals_interleave(tenant, sim, consumers,
                                                                                one_receive_at_a_time):
    hot, others = deal(sim), [deal(sim) for _ in range(4)]
    with tenant_context(tenant.ref):
        ids = []
        for n in range(50):  # requested one after another: the order the workflow wants them applied
            ids.append(update(tenant, hot, n))
            if n % 5 == 0:
                ids += [update(tenant, other, n) for other in others]
        consumers(2)
        for ident in ids:
            assert writes.wait(ident, timeout=60).status == "delivered"
    arrived = [int(p["amount"]) for p in deal_patches(sim, hot)]
    assert applied(arrived) == list(range(50)), arrived
    for other in others:
        assert applied([int(p["amount"]) for p in deal_patches(sim, other)]) == list(range(0, 50, 5))
    assert sim.provider("hubspot").deals[hot]["properties"]["amount"] == "49"
    # interleaved: the other deals' writes did not wait for the hot deal's fifty
    paths = [c.path for c in sim.calls("hubspot") if c.method == "PATCH"
             and c.path.rsplit("/", 1)[-1] in {hot, *others}]
    hot_at = [i for i, p in enumerate(paths) if p.endswith(f"/{hot}")]
    assert any(hot_at[0] < i < hot_at[-1] for i, p in enumerate(paths) if not p.endswith(f"/{hot}"))


def test_the_shared_bucket_keeps_calls_under_the_quota_in_every_window(tenant, sim, consumers, quotas):
    from prometheus_client import REGISTRY

    waits = REGISTRY.get_sample_value("zixly_outbound_budget_waits_total",
                                      {"provider": "hubspot", "reason": "quota"}) or 0
    quotas(hubspot="10/2")  # 10 calls per 2 s: a burst of 1, then 4.5 per second
    deals = [deal(sim) for _ in range(5)]
    consumers(2, threads=3)
    with tenant_context(tenant.ref):
        ids = [update(tenant, d, n) for n in range(5) for d in deals]
        for ident in ids:
            assert writes.wait(ident, timeout=60).status == "delivered"
    times = sorted(c.at for c in sim.calls("hubspot") if c.method == "PATCH" and c.path.rsplit("/", 1)[-1] in deals)
    assert len(times) == 25
    busiest = max(sum(1 for t in times if start <= t < start + 2.0) for start in times)
    assert busiest <= 10, busiest
    assert times[-1] - times[0] >= (25 - 1 - 1) / 4.5 - 0.3  # paced, not merely lucky
    assert REGISTRY.get_sample_value("zixly_outbound_budget_waits_total",
                                     {"provider": "hubspot", "reason": "quota"}) > waits  # and it shows


def test_a_429_delays_the_record_and_loses_nothing(tenant, sim, consumers):
    """Xero answers 429 with Retry-After: the message is hidden that long, the connection's bucket blocked,
    and the invoice and the one after it for the same record go through in order afterwards."""
    connection = uuid.UUID(tenant.connections["xero"])
    org = sim.provider("xero").organisations[next(iter(sim.provider("xero").organisations))]
    contact = next(iter(org.contacts.values()))
    reference = f"ORD-{uuid.uuid4().hex[:8]}"

    def invoice(n):
        return writes.request(provider="xero", connection_id=connection, record_key=f"order:{reference}",
                                operation="create_invoice", dedup_key=f"{reference}:{n}",
                                args={"invoice": {"Type": "ACCREC", "Contact": {"ContactID": contact["ContactID"]},
                                                  "Reference": f"{reference}-{n}", "LineItems": [
                                                      {"Description": "Order", "Quantity": 1, "UnitAmount": 10}]}})

    from prometheus_client import REGISTRY

    pushed_back = REGISTRY.get_sample_value("zixly_outbound_budget_waits_total",
                                            {"provider": "xero", "reason": "provider_429"}) or 0
    sim.force_rate_limit("xero", retry_after=2, count=1)
    with tenant_context(tenant.ref):
        first, second = invoice(1), invoice(2)
        consumers(1)  # both are received in one batch: the second must wait behind the first
        done = writes.wait(second, timeout=30)
        limited = outbound.get_delivery(first)
    assert (limited.status, done.status) == ("delivered", "delivered")
    assert limited.attempts == 2 and limited.response_status == 200
    calls = [c for c in sim.calls("xero") if c.method == "PUT" and reference in c.body.decode()]
    assert [c.status for c in calls] == [429, 200, 200]
    assert calls[1].at - calls[0].at >= 2.0  # waited the Retry-After, did not hammer
    made = sorted((i["Reference"] for i in org.invoices.values() if i["Reference"].startswith(reference)))
    assert made == [f"{reference}-1", f"{reference}-2"]
    assert [c.body.decode().count(f"{reference}-1") for c in calls] == [1, 1, 0]  # the first went first
    assert REGISTRY.get_sample_value("zixly_outbound_budget_waits_total",  # visible with the other metrics
                                     {"provider": "xero", "reason": "provider_429"}) == pushed_back + 1
