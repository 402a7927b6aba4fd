"""A record a job touched, as the provider has it now ("open the moved deal"): read live through the
connection the job's workflow binds for that provider. VIEWER; 404 unless the job is this tenant's."""
from __future__ import annotations

from flask import abort

from connectors.errors import ConnectorError
from console.blueprints import tenant as blp
from console.guard import requires
from console.pages import render
from core.connections import api_calls, store
from core.connections.errors import ConnectionNotFound, ConnectionNotUsable
from core.jobs import service as jobs
from core.workflows import settings as workflow_settings

READERS = {("hubspot", "deal"): "get_deal", ("xero", "invoice"): "get_invoice", ("xero", "contact"): "get_contact"}


def readable(record) -> bool:
    return (record.system, record.record_type) in READERS


def _connection_for(workflow: str, provider: str):
    for conn_id in workflow_settings.get_workflow(workflow)["connections"].values():
        try:
            conn = store.get_connection(conn_id)
        except ConnectionNotFound:
            continue
        if conn.provider == provider:
            return conn
    return None


@blp.get("/jobs/<job_id>/records/<int:record_pk>")
@requires("VIEWER")
def record(job_id, record_pk):
    job, _ = jobs.get_job(job_id)  # 404 unless the job is this tenant's
    found = next((r for r in jobs.related_records(job.id) if r.id == record_pk), None)
    if found is None or not readable(found):
        abort(404, "This job touched no such record, or it cannot be opened here.")
    conn = _connection_for(job.workflow, found.system)
    current, error = None, None
    if conn is None:
        error = f"The workflow no longer binds a {found.system} connection."
    else:
        try:
            current = api_calls.call(conn.id, READERS[(found.system, found.record_type)], found.record_id)
        except (ConnectorError, ConnectionNotUsable) as exc:
            error = f"{found.system} did not answer ({type(exc).__name__}): {exc}"
    return render("record.html", job=job, record=found, current=current, error=error, connection=conn)
