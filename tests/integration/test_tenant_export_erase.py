"""`zixly tenants export` and `zixly tenants erase`: one archive of a tenant's rows and objects (no secrets, no
other tenant's data); erasure of its schema, S3 prefix, Redis keys and catalog records down to a tombstone,
refused while it is active, audited, and leaving every other tenant intact."""
import json
import tarfile

import pytest
from click.testing import CliRunner
from sqlalchemy import select, text

from core import bootstrap
from core.connections import store
from core.jobs import artifacts
from core.jobs import service as jobs
from core.platform.actors import Actor
from core.platform.models import AuditEntry
from core.platform.runtime import aws_client, redis_client
from core.tenants import service as tenants
from tenancy.context import tenant_context, tenant_key
from tenancy.db import catalog_session, get_router, tenant_session
from tenancy.models import StaffAuditEntry, Tenant
from zixly_cli.main import main

SECRET = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="


@pytest.fixture()
def cli(settings, monkeypatch):
    for name, value in (("DATABASE_URL", settings.database_url), ("REDIS_URL", settings.redis_url),
                        ("AWS_ENDPOINT_URL", settings.aws_endpoint_url), ("ZIXLY_DATA_KEYS", settings.data_keys),
                        ("ZIXLY_ARTIFACTS_BUCKET", settings.artifacts_bucket)):
        monkeypatch.setenv(name, value)
    yield CliRunner()
    bootstrap.init(settings)


def populate(t) -> dict:
    with tenant_context(t.ref):
        _, token = store.create_connection(provider="custom", webhook_secrets=[SECRET])
        job = jobs.create_job(workflow="echo", data={"of": t.slug}, actor=Actor("system", "test"))
        key = artifacts.put(job.id, "report.json", json.dumps({"of": t.slug}).encode())
        redis_client().set(tenant_key("probe"), t.slug)
        return {"token": token, "job": str(job.id), "artifact": key, "redis": tenant_key("probe")}


def objects(settings, slug) -> list[str]:
    listed = aws_client("s3").list_object_versions(Bucket=settings.artifacts_bucket, Prefix=f"{slug}/")
    return [v["Key"] for v in listed.get("Versions", []) + listed.get("DeleteMarkers", [])]


def schema_exists(t) -> bool:
    with get_router().catalog_engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM information_schema.schemata WHERE schema_name = :s"),
                            {"s": t.row.schema_name}).scalar() == 1


def staff_actions(slug) -> list[str]:
    with catalog_session() as session:
        return list(session.scalars(select(StaffAuditEntry.action).where(StaffAuditEntry.tenant_slug == slug)
                                    .order_by(StaffAuditEntry.id)))


def test_export_writes_one_archive_of_the_tenants_own_data_without_secrets(cli, make_tenant, settings, tmp_path):
    a, b = make_tenant("expa"), make_tenant("expb")
    mine, theirs = populate(a), populate(b)
    out = tmp_path / "a.tar.gz"
    r = cli.invoke(main, ["tenants", "export", a.slug, "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert f"wrote {out}" in r.output and "1 S3 object(s)" in r.output
    with tarfile.open(out) as archive:
        names = set(archive.getnames())
        manifest = json.load(archive.extractfile("manifest.json"))
        rows = {name: archive.extractfile(name).read() for name in names if name.startswith("tables/")}
        artifact = archive.extractfile(f"s3/{mine['artifact']}").read()
    assert {"manifest.json", "tables/jobs.jsonl", "tables/connections.jsonl", f"s3/{mine['artifact']}"} <= names
    assert manifest["tenant"] == a.slug and manifest["rows"]["jobs"] == 1 and manifest["objects"] == 1
    assert [json.loads(line)["id"] for line in rows["tables/jobs.jsonl"].splitlines()] == [mine["job"]]
    everything = b"".join(rows.values())
    assert theirs["job"].encode() not in everything and not any(b.slug in name for name in names)
    assert b"_sealed" not in rows["tables/connections.jsonl"] and SECRET.encode() not in everything
    assert json.loads(artifact) == {"of": a.slug}
    with tenant_context(a.ref), tenant_session() as session:
        assert "tenant.exported" in session.scalars(select(AuditEntry.action))
    assert staff_actions(a.slug) == ["tenant.exported"] and staff_actions(b.slug) == []


def test_erase_removes_the_tenant_everywhere_and_leaves_the_others_intact(cli, client, make_tenant, settings):
    a, b = make_tenant("era"), make_tenant("erb")
    mine, theirs = populate(a), populate(b)
    refused = cli.invoke(main, ["tenants", "erase", a.slug, "--yes"])
    assert refused.exit_code != 0 and "suspend or archive it first" in refused.output
    assert schema_exists(a) and objects(settings, a.slug) and staff_actions(a.slug) == []  # nothing changed
    tenants.update_tenant(a.slug, actor=Actor("staff", "test"), status="suspended")
    r = cli.invoke(main, ["tenants", "erase", a.slug, "--yes"])
    assert r.exit_code == 0, r.output
    assert "1 schema(s)" in r.output and "1 S3 object version(s)" in r.output and "tombstone kept" in r.output
    assert not schema_exists(a) and objects(settings, a.slug) == []
    assert redis_client().get(mine["redis"]) is None
    with catalog_session() as session:
        tomb = session.scalar(select(Tenant).where(Tenant.slug == a.slug))
    assert (tomb.status, tomb.name, tomb.admin_email) == ("erased", "", None) and tomb.erased_at is not None
    assert client.get("/v1/jobs", headers=a.headers).status_code == 401  # its keys are gone
    assert client.post(f"/v1/hooks/{mine['token']}", data=b"{}").status_code == 404  # and its endpoints
    assert staff_actions(a.slug) == ["tenant.erased"]
    # b is untouched: schema, rows, objects, Redis keys, keys, endpoints
    assert schema_exists(b) and objects(settings, b.slug) == [theirs["artifact"]]
    assert redis_client().get(theirs["redis"]) == b.slug.encode()
    listed = client.get("/v1/jobs", headers=b.headers)
    assert listed.status_code == 200 and [j["id"] for j in listed.get_json()["items"]] == [theirs["job"]]
    assert staff_actions(b.slug) == []
    again = cli.invoke(main, ["tenants", "erase", a.slug, "--yes"])  # finishing an interrupted erasure is safe
    assert again.exit_code == 0 and staff_actions(a.slug) == ["tenant.erased", "tenant.erased"]
    assert schema_exists(b) and redis_client().get(theirs["redis"]) == b.slug.encode()
