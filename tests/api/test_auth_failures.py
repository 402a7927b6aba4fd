"""Failed authentications are budgeted per client address, before a credential costs a catalog query."""
from __future__ import annotations

import uuid

import pytest
from sqlalchemy import event

from api.auth_failures import FailureBudget
from tenancy.db import get_router

BUDGET = 3


@pytest.fixture()
def tight_budget(app, settings):
    """A budget of 3 failures per minute on the test app (the suite's own budget is generous)."""
    before = app.extensions["zixly_auth_failures"]
    app.extensions["zixly_auth_failures"] = FailureBudget(app.extensions["zixly_limiter"], f"{BUDGET}/minute",
                                                          fail_open=True)
    yield
    app.extensions["zixly_auth_failures"] = before


@pytest.fixture()
def catalog_statements():
    """Statements sent to the catalog database while the test runs."""
    seen: list[str] = []
    engine = get_router().catalog_engine

    def count(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    yield seen
    event.remove(engine, "before_cursor_execute", count)


def address() -> str:
    """A client address of this test alone (Redis outlives tests; no test may spend another's budget)."""
    raw = uuid.uuid4().bytes
    return f"10.{raw[0]}.{raw[1]}.{raw[2]}"


def bad_key() -> str:
    return "zx_live_" + uuid.uuid4().hex[:8] + "_" + uuid.uuid4().hex


def test_spent_budget_answers_429_before_any_catalog_query(client, make_tenant, tight_budget, catalog_statements):
    t = make_tenant()
    attacker, other = address(), address()
    for _ in range(BUDGET):
        r = client.get("/v1/tenant", headers={"X-API-Key": bad_key()}, environ_base={"REMOTE_ADDR": attacker})
        assert r.status_code == 401
    catalog_statements.clear()
    for headers in ({"X-API-Key": bad_key()}, {"Authorization": "Bearer not-a-jwt"}, t.headers):
        r = client.get("/v1/tenant", headers=headers, environ_base={"REMOTE_ADDR": attacker})
        assert r.status_code == 429 and r.content_type == "application/problem+json"
        assert r.get_json()["type"].endswith("/too-many-failed-authentications")
        assert 1 <= int(r.headers["Retry-After"]) <= 60 and r.headers["X-Request-ID"]
    assert catalog_statements == []  # not one key looked up once the budget was spent
    spoofed = {"X-API-Key": bad_key(), "X-Forwarded-For": other}  # no trusted proxy: the header names nobody
    assert client.get("/v1/tenant", headers=spoofed, environ_base={"REMOTE_ADDR": attacker}).status_code == 429
    r = client.get("/v1/tenant", headers=t.headers, environ_base={"REMOTE_ADDR": other})
    assert r.status_code == 200  # a good key from another address is unaffected


def test_malformed_bearer_tokens_spend_the_budget_and_good_requests_do_not(client, make_tenant, tight_budget):
    t = make_tenant()
    caller = address()
    for _ in range(BUDGET + 2):  # successes spend nothing
        assert client.get("/v1/tenant", headers=t.headers, environ_base={"REMOTE_ADDR": caller}).status_code == 200
    for header in ("Bearer", "Basic abc", "Bearer x.y.z"):
        r = client.get("/v1/tenant", headers={"Authorization": header}, environ_base={"REMOTE_ADDR": caller})
        assert r.status_code == 401
    r = client.get("/v1/tenant", headers=t.headers, environ_base={"REMOTE_ADDR": caller})
    assert r.status_code == 429


def test_requests_without_credentials_are_not_budgeted(client, tight_budget):
    caller = address()
    for _ in range(BUDGET + 1):
        assert client.get("/v1/tenant", environ_base={"REMOTE_ADDR": caller}).status_code == 401
    assert client.get("/health", environ_base={"REMOTE_ADDR": caller}).status_code == 200
