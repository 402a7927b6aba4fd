"""An Idempotency-Key claim left in progress by a crash is taken over after its lease; an answer that committed
while the database failed under its store is still answered and replayed to a repeat."""
import hashlib
import json
from datetime import timedelta

from psycopg import sql
from sqlalchemy import func, select, text

from core.jobs.models import Job
from core.platform.models import TenantIdempotencyRecord
from tenancy.context import tenant_context
from tenancy.db import tenant_session, tenant_transaction

BODY = json.dumps({"workflow": "echo", "input": {"n": 1}})


def post(client, t, key, body=BODY):
    return client.post("/v1/jobs", data=body, content_type="application/json",
                       headers={**t.headers, "Idempotency-Key": key})


def principal_of(client, t) -> str:
    assert post(client, t, "who-am-i", json.dumps({"workflow": "echo", "input": {}})).status_code == 202
    with tenant_context(t.ref), tenant_session() as session:
        query = select(TenantIdempotencyRecord.principal).where(TenantIdempotencyRecord.key == "who-am-i")
        return session.scalar(query)


def left_in_progress(t, key, principal, age: timedelta):
    """The record a request leaves when its process dies between claim and store: claimed, no answer."""
    digest = hashlib.sha256(b"POST/v1/jobs\0" + BODY.encode()).hexdigest()
    with tenant_context(t.ref), tenant_transaction() as session:
        session.add(TenantIdempotencyRecord(key=key, principal=principal, request_hash=digest,
                                            created_at=func.now() - age))


def job_count(t):
    with tenant_context(t.ref), tenant_session() as session:
        return session.scalar(select(func.count()).select_from(Job))


def test_a_claim_left_by_a_crash_is_taken_over_after_its_lease(client, make_tenant):
    t, other = make_tenant(), make_tenant()
    principal = principal_of(client, t)
    left_in_progress(t, "crashed", principal, age=timedelta(minutes=2))  # older than the 60 s lease
    left_in_progress(t, "running", principal, age=timedelta(seconds=0))  # still within it
    jobs_before = job_count(t)
    busy = post(client, t, "running")
    assert busy.status_code == 409 and busy.content_type == "application/problem+json"
    assert busy.headers["Retry-After"] == "1"
    first = post(client, t, "crashed")
    again = post(client, t, "crashed")
    assert first.status_code == again.status_code == 202 and first.get_json()["id"] == again.get_json()["id"]
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert job_count(t) == jobs_before + 1
    reused = post(client, t, "crashed", json.dumps({"workflow": "echo", "input": {"n": 2}}))
    assert reused.status_code == 422  # a taken-over key still belongs to its request
    # another tenant's key of the same name is its own: not in progress, not replayed
    mine = post(client, other, "crashed")
    assert mine.status_code == 202 and mine.get_json()["id"] != first.get_json()["id"]
    assert "Idempotent-Replayed" not in mine.headers


def test_an_answer_committed_while_its_store_failed_is_answered_and_replayed(client, make_tenant):
    t = make_tenant()
    schema = sql.Identifier(t.ref.schema).as_string(None)
    fault = f"""
        CREATE SEQUENCE {schema}.store_faults;
        CREATE FUNCTION {schema}.fail_first_store() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF NEW.status_code IS NOT NULL AND nextval('{t.ref.schema}.store_faults') <= 2 THEN
            RAISE EXCEPTION 'injected serialization failure' USING ERRCODE = '40001';
          END IF;
          RETURN NEW;
        END $$;
        CREATE TRIGGER fail_first_store BEFORE UPDATE ON {schema}.idempotency_keys
          FOR EACH ROW EXECUTE FUNCTION {schema}.fail_first_store();
    """
    with tenant_context(t.ref), tenant_transaction() as session:
        session.execute(text(fault))
    first = post(client, t, "store-fails")
    again = post(client, t, "store-fails")
    assert first.status_code == 202 and again.status_code == 202
    assert again.get_json()["id"] == first.get_json()["id"] and again.headers["Idempotent-Replayed"] == "true"
    assert job_count(t) == 1
