"""Jobs: filter, detail with steps, touched records and artifacts, retry and cancel (EDITOR), and both pages
kept live by Server-Sent Events (console.live)."""
from __future__ import annotations

from flask import g, render_template, request

from api.resources.jobs import JobQueryArgsSchema
from console import forms, guard, live
from console.blueprints import tenant as blp
from console.guard import requires
from console.pages import done, render
from console.views import records
from core.jobs import artifacts
from core.jobs import service as jobs
from core.workflows.registry import WORKFLOWS

FILTERS = ["status", "workflow"]
FINAL = (jobs.COMPLETED, jobs.FAILED, jobs.CANCELLED)
LIST_LIMIT = 50


def _filters() -> tuple[dict, dict]:
    data, errors = forms.parse(JobQueryArgsSchema(), request.args, FILTERS)
    return {k: data.get(k) for k in FILTERS}, errors


def _rows_html(filters: dict) -> str:
    rows = jobs.list_jobs(limit=LIST_LIMIT, **filters)
    return render_template("partials/job_rows.html", jobs=rows)


@blp.get("/jobs", endpoint="jobs")
@requires("VIEWER")
def jobs_page():
    filters, errors = _filters()
    if errors:
        filters = {k: None for k in FILTERS}
    return render("jobs.html", status=422 if errors else 200, rows_html=_rows_html(filters), filters=filters,
                  errors=errors, statuses=jobs.STATUSES, workflows=sorted(WORKFLOWS), query=request.query_string)


@blp.get("/jobs/stream")
@requires("VIEWER")
def jobs_stream():
    filters, errors = _filters()
    if errors:
        filters = {k: None for k in FILTERS}
    return live.stream(g.console_tenant, lambda: (_rows_html(filters), False), event="rows",
                       alive=guard.still_signed_in)


def _detail_html(job_id) -> tuple[str, bool]:
    job, steps = jobs.get_job(job_id)
    html = render_template("partials/job_live.html", job=job, steps=steps, records=jobs.related_records(job.id),
                           readable=records.readable)
    return html, job.status in FINAL


@blp.get("/jobs/<job_id>")
@requires("VIEWER")
def job(job_id):
    record, _ = jobs.get_job(job_id)  # 404 unless the job is this tenant's
    try:
        files, files_error = artifacts.list_for_job(record.id), None
    except artifacts.StorageUnavailable as exc:
        files, files_error = [], str(exc)
    html, final = _detail_html(record.id)
    return render("job.html", job=record, live_html=html, final=final, artifacts=files, artifacts_error=files_error)


@blp.get("/jobs/<job_id>/stream")
@requires("VIEWER")
def job_stream(job_id):
    record, _ = jobs.get_job(job_id)
    return live.stream(g.console_tenant, lambda: _detail_html(record.id), event="job", alive=guard.still_signed_in)


@blp.post("/jobs/<job_id>/retry")
@requires("EDITOR")
def retry(job_id):
    try:
        jobs.retry_job(job_id)
    except jobs.IllegalTransition as exc:
        return done(f"Not retried: {exc}.", "console_tenant.job", kind="error", job_id=job_id)
    return done("Job queued again.", "console_tenant.job", job_id=job_id)


@blp.post("/jobs/<job_id>/cancel")
@requires("EDITOR")
def cancel(job_id):
    try:
        jobs.cancel_job(job_id)
    except jobs.IllegalTransition as exc:
        return done(f"Not cancelled: {exc}.", "console_tenant.job", kind="error", job_id=job_id)
    return done("Job cancelled.", "console_tenant.job", job_id=job_id)
