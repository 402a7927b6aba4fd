"""A worker's turn (core.platform.fair_queue): the next tenant's next job, run in that tenant's context.

Invariant: a turn runs at most the one job it took, and forgets it only once that run ended (finished, put off
by its claim, or refused because its tenant is not active); a turn interrupted before then (the worker died, a
transient error retried it) runs the same job when it is delivered again.
"""
from __future__ import annotations

from core.execution.service import execute_job
from core.platform import fair_queue
from core.platform.logs import job_id_var, request_id_var
from tenancy.context import tenant_context
from tenancy.db import get_router
from tenancy.provisioning import load_tenant_ref

IDLE, REFUSED = "IDLE", "REFUSED"


def run_next_job(turn_id: str) -> str:
    """Take this turn's job and run it; answers the job's status, IDLE when no tenant had a job waiting, or
    REFUSED when the job's tenant is suspended or gone (its QUEUED jobs are swept once it is active again)."""
    turn = fair_queue.take(turn_id)
    if turn is None:
        return IDLE
    tenant = load_tenant_ref(get_router(), turn.slug)
    if tenant is None or tenant.status != "active":
        fair_queue.release(turn_id)
        return REFUSED
    job_id_var.set(turn.job_id)  # the job's request, not the turn's (any request's turn may run any job)
    request_id_var.set(turn.request_id)
    with tenant_context(tenant):
        status = execute_job(turn.job_id)
    fair_queue.release(turn_id)
    return status
