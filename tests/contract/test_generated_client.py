"""The contract is usable: a client generated from the committed spec (openapi-python-client, into a temporary
directory) runs a real flow against the app on a real HTTP server, with a real worker subprocess:
staff create a tenant → the tenant's key starts an `echo` job → the job is read back until it completes."""
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import unique_slug
from tests.workers.test_durability import start_worker, stop

ROOT = Path(__file__).resolve().parents[2]
SPEC_FILE = ROOT / "openapi" / "openapi.yaml"


@pytest.fixture(scope="module")
def zixly_client(tmp_path_factory):
    out = tmp_path_factory.mktemp("generated")
    config = out / "config.yaml"
    config.write_text("package_name_override: zixly_client\npost_hooks: []\n")
    generator = Path(sys.executable).parent / "openapi-python-client"
    run = subprocess.run([str(generator), "generate", "--path", str(SPEC_FILE), "--meta", "none",
                          "--output-path", str(out / "zixly_client"), "--config", str(config)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Warning" not in run.stdout + run.stderr, run.stdout + run.stderr  # every operation generated
    sys.path.insert(0, str(out))
    try:
        import zixly_client

        yield zixly_client
    finally:
        sys.path.remove(str(out))
        for name in [m for m in sys.modules if m == "zixly_client" or m.startswith("zixly_client.")]:
            del sys.modules[name]


@pytest.fixture()
def worker(settings, tmp_path):
    proc = start_worker(settings, tmp_path, concurrency=1)
    yield proc
    stop(proc)


def test_generated_client_runs_the_tenant_flow(zixly_client, live_server, tokens, worker):
    from zixly_client import AuthenticatedClient
    from zixly_client.api.jobs import get_job_by_id, get_jobs, post_jobs
    from zixly_client.api.staff_tenants import post_tenants
    from zixly_client.api.your_tenant import get_current_tenant
    from zixly_client.models import (
        JobCreate,
        JobCreateInput,
        JobCreateWorkflow,
        JobDetail,
        Problem,
        TenantCreate,
        TenantCreated,
    )

    staff = AuthenticatedClient(base_url=live_server, token=tokens(staff=True), raise_on_unexpected_status=True)
    slug = unique_slug("client")
    created = post_tenants.sync_detailed(client=staff, body=TenantCreate(slug=slug, name="Client Co", plan="pro"),
                                         idempotency_key=str(uuid.uuid4()))
    assert created.status_code == 201 and isinstance(created.parsed, TenantCreated), created.content
    assert created.parsed.slug == slug and created.parsed.status == "active"

    tenant = AuthenticatedClient(base_url=live_server, token=created.parsed.api_key, prefix="",
                                 auth_header_name="X-API-Key", raise_on_unexpected_status=True)
    assert get_current_tenant.sync(client=tenant).slug == slug

    started = post_jobs.sync_detailed(client=tenant, body=JobCreate(
        workflow=JobCreateWorkflow.ECHO, input_=JobCreateInput.from_dict({"hello": "client"})),
        x_request_id="client-flow-1")
    assert started.status_code == 202 and started.parsed.status == "QUEUED", started.content
    assert started.headers["X-Request-ID"] == "client-flow-1" and "RateLimit-Remaining" in started.headers

    deadline = time.monotonic() + 90
    job = get_job_by_id.sync(client=tenant, job_id=started.parsed.id)
    while job.status not in ("COMPLETED", "FAILED", "CANCELLED") and time.monotonic() < deadline:
        time.sleep(0.25)
        job = get_job_by_id.sync(client=tenant, job_id=started.parsed.id)
    assert isinstance(job, JobDetail) and job.status == "COMPLETED", job
    assert job.result == {"echo": {"hello": "client"}} and job.steps[0].name == "echo"

    page = get_jobs.sync(client=tenant, limit=1)
    assert [j.id for j in page.items] == [started.parsed.id] and page.next_cursor is None

    missing = get_job_by_id.sync(client=tenant, job_id=str(uuid.uuid4()))  # errors parse as the Problem model
    assert isinstance(missing, Problem) and missing.status == 404
