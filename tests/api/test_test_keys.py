"""A `zx_test_` key reads everything and may run `echo`, but never changes or calls a live connection: 403
`test-key-not-allowed`, nothing written. A live key of the same role does all of it."""
import uuid

from sqlalchemy import func, select

from core.connections import store
from core.connections.models import Connection
from core.jobs.models import Job
from tenancy.context import tenant_context
from tenancy.db import tenant_session


def count(t, model, *where) -> int:
    with tenant_context(t.ref), tenant_session() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


def make_test_key(client, t) -> dict:
    made = client.post("/v1/api-keys", json={"name": "ci", "role": "ADMIN", "environment": "test"}, headers=t.headers)
    assert made.status_code == 201 and made.get_json()["secret"].startswith("zx_test_")
    return {"X-API-Key": made.get_json()["secret"]}


def test_a_test_key_reads_and_runs_echo_but_touches_no_live_connection(client, make_tenant):
    t = make_tenant("tk")
    with tenant_context(t.ref):
        conn, _ = store.create_connection(provider="custom", webhook_secrets=["whsec_" + "a" * 32])
    headers = make_test_key(client, t)
    assert client.get("/v1/connections", headers=headers).status_code == 200
    assert client.get(f"/v1/connections/{conn.id}", headers=headers).status_code == 200
    assert client.post("/v1/jobs", json={"workflow": "echo", "input": {"n": 1}}, headers=headers).status_code == 202

    refused = [
        client.post("/v1/connections", json={"provider": "custom"}, headers=headers),
        client.patch(f"/v1/connections/{conn.id}", json={"name": "renamed"}, headers=headers),
        client.delete(f"/v1/connections/{conn.id}", headers=headers),
        client.post(f"/v1/connections/{conn.id}/test", headers=headers),
        client.put("/v1/workflows/echo", json={"enabled": True}, headers=headers),
        client.post("/v1/jobs", json={"workflow": "xero-invoice-paid-to-hubspot", "input": {}}, headers=headers),
        client.post(f"/v1/deliveries/{uuid.uuid4()}/replay", headers=headers),
        client.post(f"/v1/events/{uuid.uuid4()}/replay", headers=headers),
    ]
    assert [(r.status_code, r.content_type) for r in refused] == [(403, "application/problem+json")] * len(refused)
    assert {r.get_json()["type"].rsplit("/", 1)[-1] for r in refused} == {"test-key-not-allowed"}
    assert count(t, Connection) == 1 and count(t, Connection, Connection.name == "renamed") == 0
    assert count(t, Job, Job.workflow != "echo") == 0

    # the tenant's live key (same role) is not limited
    assert client.patch(f"/v1/connections/{conn.id}", json={"name": "renamed"}, headers=t.headers).status_code == 200


def test_a_test_key_retries_echo_jobs_only(client, make_tenant):
    t = make_tenant("tkr")
    headers = make_test_key(client, t)
    echo = client.post("/v1/jobs", json={"workflow": "echo", "input": {}}, headers=headers).get_json()["id"]
    assert client.post(f"/v1/jobs/{echo}/cancel", headers=headers).status_code == 200
    assert client.post(f"/v1/jobs/{echo}/retry", headers=headers).status_code == 202
    live = client.post("/v1/jobs", json={"workflow": "xero-invoice-paid-to-hubspot", "input": {}},
                       headers=t.headers).get_json()["id"]
    assert client.post(f"/v1/jobs/{live}/cancel", headers=t.headers).status_code == 200
    refused = client.post(f"/v1/jobs/{live}/retry", headers=headers)
    assert refused.status_code == 403 and refused.get_json()["type"].endswith("/test-key-not-allowed")
    assert client.get(f"/v1/jobs/{live}", headers=headers).get_json()["status"] == "CANCELLED"
