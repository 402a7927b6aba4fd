"""Export one tenant's data to one archive: a tar.gz of JSON lines per table and the tenant's S3 objects.

Layout: `manifest.json` (tenant, plan, schema revision, when, how many rows per table and objects),
`tables/<table>.jsonl` (one JSON object per row, in primary-key order; UUIDs and times as strings, bytes as
base64) for every tenant table, and `s3/<key>` for every object under the tenant's prefix. Invariant: nothing of
another tenant is read (the rows come through the tenant's own session, the objects from its own prefix), and
no secret leaves: the sealed columns (`*_sealed`: tokens, webhook secrets, app secrets) are left out, since
they could only be opened with Zixly's data keys anyway. Each export is audited (the tenant's audit log and the
catalog's staff audit).
"""
from __future__ import annotations

import base64
import io
import json
import shutil
import tarfile
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select

from core.lifecycle import staff_audit
from core.platform import audit
from core.platform.actors import Actor
from core.platform.runtime import aws_client, settings
from core.tables import TENANT_TABLES
from tenancy.apikeys import tenant_ref
from tenancy.context import tenant_context
from tenancy.db import get_router, tenant_session
from tenancy.provisioning import get_tenant

SECRET_SUFFIX = "_sealed"
Progress = Callable[[str, int], None]  # (what, how many more) after each table and each object


@dataclass
class ExportReport:
    path: Path
    rows: dict[str, int] = field(default_factory=dict)
    objects: int = 0


def _plain(value):
    if isinstance(value, (uuid.UUID, Decimal)):
        return str(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (bytes, memoryview)):
        return base64.b64encode(bytes(value)).decode()
    raise TypeError(f"cannot export a {type(value).__name__}")


def _add(archive: tarfile.TarFile, name: str, source, size: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime = size, int(time.time())
    archive.addfile(info, source)


def _export_table(archive: tarfile.TarFile, table) -> int:
    columns = [c for c in table.c if not c.name.endswith(SECRET_SUFFIX)]
    count = 0
    with tempfile.TemporaryFile() as spool, tenant_session() as session:
        result = session.execute(select(*columns).order_by(*table.primary_key.columns)).mappings()
        for row in result.yield_per(1000):
            spool.write(json.dumps(dict(row), default=_plain, separators=(",", ":")).encode() + b"\n")
            count += 1
        size = spool.tell()
        spool.seek(0)
        _add(archive, f"tables/{table.name}.jsonl", spool, size)
    return count


def _export_objects(archive: tarfile.TarFile, slug: str, progress: Progress) -> int:
    s3, bucket = aws_client("s3"), settings().artifacts_bucket
    count = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{slug}/"):
        for item in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"]
            with tempfile.TemporaryFile() as spool:
                shutil.copyfileobj(body, spool, 1 << 20)
                size = spool.tell()
                spool.seek(0)
                _add(archive, f"s3/{item['Key']}", spool, size)
            count += 1
            progress(f"s3/{item['Key']}", 1)
    return count


def export_tenant(slug: str, *, destination: Path, actor: Actor, progress: Progress | None = None) -> ExportReport:
    """Write the tenant's archive to `destination` (a .tar.gz); answers what it holds."""
    progress = progress or (lambda what, n: None)
    tenant = get_tenant(get_router(), slug)
    ref = tenant_ref(tenant)
    report = ExportReport(Path(destination))
    with tenant_context(ref), tarfile.open(report.path, "w:gz") as archive:
        for table in TENANT_TABLES:
            report.rows[table.name] = _export_table(archive, table)
            progress(f"tables/{table.name}", report.rows[table.name])
        report.objects = _export_objects(archive, slug, progress)
        manifest = {"tenant": slug, "name": tenant.name, "plan": tenant.plan, "status": tenant.status,
                    "schema_revision": tenant.schema_revision, "exported_at": datetime.now().astimezone().isoformat(),
                    "rows": report.rows, "objects": report.objects,
                    "left_out": f"columns ending in {SECRET_SUFFIX} (sealed secrets)"}
        data = json.dumps(manifest, indent=2).encode()
        _add(archive, "manifest.json", io.BytesIO(data), len(data))
        details = {"rows": sum(report.rows.values()), "objects": report.objects}
        audit.record_now(actor=actor, action="tenant.exported", target_type="tenant", target_id=slug, details=details)
    staff_audit.record(actor=actor, action="tenant.exported", slug=slug, details=details)
    return report
