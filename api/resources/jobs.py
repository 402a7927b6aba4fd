"""Jobs of the calling tenant: start, list, read, cancel, retry."""
from __future__ import annotations

import marshmallow as ma
from flask import g, url_for
from flask.views import MethodView
from flask_smorest import Blueprint

from api.auth import access, refuse_test_key
from api.common import PageArgsSchema, idempotent, newest_first_page, page_schema
from core.jobs import artifacts
from core.jobs import service as jobs
from core.workflows.registry import WORKFLOWS

TEST_KEY_WORKFLOW = "echo"  # the one workflow that touches no connection: what a test key may run
blp = Blueprint("jobs", __name__, url_prefix="/v1/jobs", description="Workflow jobs.")


class JobStepSchema(ma.Schema):
    attempt = ma.fields.Integer()
    name = ma.fields.String()
    status = ma.fields.String()
    detail = ma.fields.Dict()
    at = ma.fields.DateTime()


class JobSchema(ma.Schema):
    id = ma.fields.String()
    workflow = ma.fields.String()
    status = ma.fields.String()
    event_id = ma.fields.String(allow_none=True)
    attempts = ma.fields.Integer()
    max_attempts = ma.fields.Integer()
    error = ma.fields.String(allow_none=True)
    created_by = ma.fields.String(allow_none=True)
    created_at = ma.fields.DateTime()
    started_at = ma.fields.DateTime(allow_none=True)
    finished_at = ma.fields.DateTime(allow_none=True)
    links = ma.fields.Method("_links")

    def _links(self, job):
        return {"self": url_for("jobs.JobById", job_id=str(job.id))}


class RelatedRecordSchema(ma.Schema):
    system = ma.fields.String()
    record_type = ma.fields.String()
    record_id = ma.fields.String()
    action = ma.fields.String(metadata={"description": "read | created | updated | deleted"})
    detail = ma.fields.Dict()
    at = ma.fields.DateTime()


class JobDetailSchema(JobSchema):
    input = ma.fields.Raw()
    result = ma.fields.Raw(allow_none=True)
    steps = ma.fields.List(ma.fields.Nested(JobStepSchema))
    related_records = ma.fields.List(ma.fields.Nested(RelatedRecordSchema), metadata={
        "description": "External records the job read, created or updated."})


class ArtifactSchema(ma.Schema):
    name = ma.fields.String()
    size = ma.fields.Integer()
    modified_at = ma.fields.DateTime()
    url = ma.fields.String(metadata={"description": "A presigned download link, valid `expires_in` seconds."})
    expires_in = ma.fields.Integer()


class ArtifactListSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(ArtifactSchema))


class JobCreateSchema(ma.Schema):
    workflow = ma.fields.String(required=True, validate=ma.validate.OneOf(sorted(WORKFLOWS)))
    input = ma.fields.Dict(load_default=dict, metadata={"description": "The workflow's input.",
                                                        "example": {"hello": "world"}})


class JobQueryArgsSchema(PageArgsSchema):
    status = ma.fields.String(load_default=None, validate=ma.validate.OneOf(jobs.STATUSES))
    workflow = ma.fields.String(load_default=None, validate=ma.validate.Length(max=64))
    created_after = ma.fields.AwareDateTime(load_default=None)
    created_before = ma.fields.AwareDateTime(load_default=None)


JobPageSchema = page_schema(JobSchema, "JobPageSchema")


@blp.route("")
class Jobs(MethodView):
    @access("VIEWER")
    @blp.arguments(JobQueryArgsSchema, location="query")
    @blp.response(200, JobPageSchema)
    def get(self, args):
        """List jobs, newest first (filters: status, workflow, created range)."""
        return newest_first_page(jobs.list_jobs, args, "created_at")

    @access("EDITOR")
    @idempotent("tenant")
    @blp.arguments(JobCreateSchema)
    @blp.response(202, JobSchema)
    def post(self, data):
        """Start a job; it runs in a worker. Accepts `Idempotency-Key`. A test key may start `echo` only."""
        if data["workflow"] != TEST_KEY_WORKFLOW:
            refuse_test_key(f"the {data['workflow']} workflow calls live connections")
        return jobs.create_job(workflow=data["workflow"], data=data["input"], actor=g.actor)


@blp.route("/<string:job_id>")
class JobById(MethodView):
    @access("VIEWER")
    @blp.response(200, JobDetailSchema)
    def get(self, job_id):
        """A job with its execution log: steps and the external records it touched."""
        job, steps = jobs.get_job(job_id)
        job.steps = steps
        job.related_records = jobs.related_records(job.id)
        return job


@blp.route("/<string:job_id>/artifacts")
class JobArtifacts(MethodView):
    @access("VIEWER")
    @blp.response(200, ArtifactListSchema)
    def get(self, job_id):
        """The job's stored documents and payloads, with short-lived download links."""
        job, _ = jobs.get_job(job_id)  # 404 unless the job is the caller's
        return {"items": artifacts.list_for_job(job.id)}


@blp.route("/<string:job_id>/cancel")
class JobCancel(MethodView):
    @access("EDITOR")
    @blp.response(200, JobSchema)
    def post(self, job_id):
        """Cancel a queued or running job."""
        return jobs.cancel_job(job_id)


@blp.route("/<string:job_id>/retry")
class JobRetry(MethodView):
    @access("EDITOR")
    @blp.response(202, JobSchema)
    def post(self, job_id):
        """Queue a failed or cancelled job again (a test key: `echo` jobs only)."""
        job, _ = jobs.get_job(job_id)  # 404 unless the job is the caller's
        if job.workflow != TEST_KEY_WORKFLOW:
            refuse_test_key(f"the {job.workflow} workflow calls live connections")
        return jobs.retry_job(job_id)
