"""The django-tenants side of the fleet benchmark; run by bench/fleet.py with the python of a separate venv
(django-tenants from PyPI), one phase per process, each printing one JSON line with its measurements.

The tenant app mirrors Zixly's tenant tree (the same 8 tables, columns, indexes and foreign keys), and the
"new migration" is the same change: a new table, a column with a default on jobs, and an index on it.
Only django-tenants, contenttypes (which it imports) and the two apps are installed: its best case.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

SHARED_MODELS = '''
from django.db import models
from django_tenants.models import DomainMixin, TenantMixin


class Client(TenantMixin):
    name = models.CharField(max_length=100)
    auto_create_schema = True


class Domain(DomainMixin):
    pass
'''

TENANT_MODELS = '''
import uuid

from django.contrib.postgres.fields import ArrayField
from django.db import models


class AuditEntry(models.Model):
    at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor_type = models.CharField(max_length=16)
    actor_id = models.CharField(max_length=200)
    action = models.CharField(max_length=64)
    target_type = models.CharField(max_length=64, null=True)
    target_id = models.CharField(max_length=200, null=True)
    details = models.JSONField(default=dict)
    request_id = models.CharField(max_length=64, null=True)

    class Meta:
        db_table = "audit_log"


class IdempotencyKey(models.Model):
    key = models.CharField(max_length=255)
    principal = models.CharField(max_length=200)
    request_hash = models.CharField(max_length=64)
    status_code = models.IntegerField(null=True)
    response_body = models.JSONField(null=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        db_table = "idempotency_keys"
        unique_together = [("key", "principal")]


class Connection(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    provider = models.CharField(max_length=32)
    status = models.CharField(max_length=16, default="active")
    account_id = models.CharField(max_length=255, null=True)
    name = models.CharField(max_length=200, default="")
    webhook_secrets = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "connections"


class InboundEvent(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    connection = models.ForeignKey(Connection, null=True, on_delete=models.SET_NULL)
    provider = models.CharField(max_length=32)
    provider_event_id = models.CharField(max_length=255)
    event_type = models.CharField(max_length=128)
    account_id = models.CharField(max_length=255, null=True)
    resource_id = models.CharField(max_length=255, null=True)
    occurred_at = models.CharField(max_length=64, null=True)
    headers = models.JSONField(default=dict)
    payload = models.JSONField()
    raw_body = models.BinaryField(null=True)
    status = models.CharField(max_length=16, default="received")
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    replays = models.IntegerField(default=0)

    class Meta:
        db_table = "inbound_events"
        unique_together = [("provider", "provider_event_id")]


class WorkflowSetting(models.Model):
    name = models.CharField(max_length=64, primary_key=True)
    enabled = models.BooleanField(default=False)
    event_types = ArrayField(models.CharField(max_length=128), default=list)
    max_attempts = models.IntegerField(default=4)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "workflow_settings"


class Job(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    workflow = models.CharField(max_length=64)
    input = models.JSONField()
    status = models.CharField(max_length=16, db_index=True)
    event = models.ForeignKey(InboundEvent, null=True, on_delete=models.SET_NULL)
    attempts = models.IntegerField(default=0)
    max_attempts = models.IntegerField(default=4)
    result = models.JSONField(null=True)
    error = models.TextField(null=True)
    created_by = models.CharField(max_length=200, null=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True)
    finished_at = models.DateTimeField(null=True)
    updated_at = models.DateTimeField(auto_now=True)
{job_extra}
    class Meta:
        db_table = "jobs"


class JobStep(models.Model):
    job = models.ForeignKey(Job, on_delete=models.CASCADE)
    attempt = models.IntegerField()
    name = models.CharField(max_length=64)
    status = models.CharField(max_length=16)
    detail = models.JSONField(default=dict)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "job_steps"


class Outbox(models.Model):
    task = models.CharField(max_length=128)
    args = models.JSONField()
    countdown = models.FloatField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "outbox"
{extra_models}
'''

NEW_MIGRATION_JOB = "    priority = models.IntegerField(default=5, db_index=True)\n"
NEW_MIGRATION_MODEL = '''

class Note(models.Model):
    body = models.TextField(default="")

    class Meta:
        db_table = "notes"
'''


def write_apps(root: Path, version: int) -> None:
    tenant_models = TENANT_MODELS.format(job_extra=NEW_MIGRATION_JOB if version > 1 else "",
                                         extra_models=NEW_MIGRATION_MODEL if version > 1 else "")
    for app, models in (("djtshared", SHARED_MODELS), ("djttenant", tenant_models)):
        (root / app / "migrations").mkdir(parents=True, exist_ok=True)
        (root / app / "__init__.py").write_text("")
        (root / app / "migrations" / "__init__.py").touch()
        (root / app / "models.py").write_text(models)


def configure(args) -> None:
    sys.path.insert(0, str(args.root))
    from django.conf import settings

    clone = args.mode == "clone"
    settings.configure(
        DATABASES={"default": {"ENGINE": "django_tenants.postgresql_backend", "NAME": args.dbname,
                               "USER": "postgres", "HOST": "127.0.0.1", "PORT": args.port}},
        DATABASE_ROUTERS=("django_tenants.routers.TenantSyncRouter",),
        SHARED_APPS=["django_tenants", "django.contrib.contenttypes", "djtshared"],
        TENANT_APPS=["djttenant"],
        INSTALLED_APPS=["django_tenants", "django.contrib.contenttypes", "djtshared", "djttenant"],
        TENANT_MODEL="djtshared.Client", TENANT_DOMAIN_MODEL="djtshared.Domain",
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField", USE_TZ=True, TIME_ZONE="UTC",
        TENANT_MULTIPROCESSING_MAX_PROCESSES=args.jobs,
        TENANT_BASE_SCHEMA="djt_base", TENANT_CREATION_FAKES_MIGRATIONS=clone,
        LOGGING_CONFIG=None,
    )
    import django

    django.setup()


def quiet_call(*args, **kwargs):
    from django.core.management import call_command

    with open(os.devnull, "w") as devnull:
        call_command(*args, stdout=devnull, stderr=devnull, verbosity=0, interactive=False, **kwargs)


def phase_setup(args) -> dict:
    from django.db import connection

    quiet_call("makemigrations", "djtshared", "djttenant")
    quiet_call("migrate_schemas", shared=True)
    from djtshared.models import Client

    Client(schema_name="public", name="public").save()
    with connection.cursor() as cur:  # the template schema django-tenants clones in its fast mode
        cur.execute("CREATE SCHEMA djt_base")
    quiet_call("migrate_schemas", schema_name="djt_base")
    return {}


def phase_provision(args) -> dict:
    from djtshared.models import Client

    times = []
    for i in range(args.start, args.start + args.count):
        started = time.perf_counter()
        Client(schema_name=f"djt_{i:05d}", name=f"Bench {i}").save()
        times.append((time.perf_counter() - started) * 1000)
        if args.progress and (i + 1 - args.start) % max(1, args.count // 20) == 0:
            print(f"progress {i + 1 - args.start}/{args.count}", file=sys.stderr, flush=True)
    return {"times_ms": times}


def phase_replicate(args) -> dict:
    """Build tenants fast for the fleet runs (untimed setup): each schema gets the SQL django-tenants' own
    migrate emits for the tenant app (`sqlmigrate`), the base schema's django_migrations rows, and a Client
    row. django-tenants' own provisioning is timed separately, on a sample."""
    from io import StringIO

    from django.core.management import call_command
    from django.db import connection
    from djtshared.models import Client

    out = StringIO()
    connection.set_schema("djt_base")  # the router lets tenant apps emit SQL only in a tenant schema
    call_command("sqlmigrate", "djttenant", "0001", stdout=out)
    ddl = "\n".join(line for line in out.getvalue().splitlines() if line.strip() not in ("BEGIN;", "COMMIT;"))
    connection.set_schema_to_public()
    connection.ensure_connection()
    raw = connection.connection  # the psycopg connection: one round trip per schema, like Zixly's setup
    for i in range(args.start, args.start + args.count):
        schema = f"djt_{i:05d}"
        with raw.transaction():
            raw.execute(f"CREATE SCHEMA {schema}; SET LOCAL search_path TO {schema}, public;\n{ddl}\n"
                        f"CREATE TABLE {schema}.django_migrations (LIKE djt_base.django_migrations INCLUDING ALL);"
                        f"INSERT INTO {schema}.django_migrations (app, name, applied)"
                        f" SELECT app, name, applied FROM djt_base.django_migrations")
        if args.progress and (i + 1 - args.start) % max(1, args.count // 20) == 0:
            print(f"progress {i + 1 - args.start}/{args.count}", file=sys.stderr, flush=True)
    connection.set_schema_to_public()
    Client.objects.bulk_create([Client(schema_name=f"djt_{i:05d}", name=f"Bench {i}")
                                for i in range(args.start, args.start + args.count)])
    return {}


def phase_makemigration(args) -> dict:
    quiet_call("makemigrations", "djttenant")
    return {}


def phase_migrate(args) -> dict:
    from django.core.management import call_command

    started = time.perf_counter()  # no stdout= here: the multiprocessing executor pickles the options
    call_command("migrate_schemas", tenant=True, executor=args.executor, verbosity=0, interactive=False)
    return {"seconds": time.perf_counter() - started}


def phase_memory(args) -> dict:
    from django.db import connection
    from djtshared.models import Client
    from djttenant.models import AuditEntry, Job

    tenants = list(Client.objects.exclude(schema_name__in=["public"]).order_by("schema_name"))
    before = backend_memory(connection)
    for tenant in tenants:
        connection.set_tenant(tenant)
        Job.objects.count()
        AuditEntry.objects.count()
    connection.set_schema_to_public()
    after = backend_memory(connection)
    return {"touched": len(tenants), "before": before, "after": after}


def backend_memory(connection) -> dict:
    with connection.cursor() as cur:
        cur.execute("SELECT pg_backend_pid(), (SELECT sum(total_bytes) FROM pg_backend_memory_contexts),"
                    " (SELECT total_bytes FROM pg_backend_memory_contexts WHERE name = 'CacheMemoryContext')")
        pid, total, cache = cur.fetchone()
    return {"contexts": int(total), "cache": int(cache or 0), "rss_anon_kb": rss_anon_kb(pid)}


def rss_anon_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


PHASES = {"setup": phase_setup, "provision": phase_provision, "replicate": phase_replicate,
          "makemigration": phase_makemigration, "migrate": phase_migrate, "memory": phase_memory}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("phase", choices=[*PHASES, "write-apps"])
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--dbname", default="")
    parser.add_argument("--port", default="5432")
    parser.add_argument("--mode", choices=["migrate", "clone"], default="migrate")
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--executor", default="standard")
    parser.add_argument("--version", type=int, default=1)
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args()
    if args.phase == "write-apps":
        write_apps(args.root, args.version)
        print(json.dumps({}))
        return
    configure(args)
    real_stdout, sys.stdout = sys.stdout, sys.stderr  # django-tenants' executors print per schema
    try:
        result = PHASES[args.phase](args)
    finally:
        sys.stdout = real_stdout
    print(json.dumps(result))


if __name__ == "__main__":
    main()
