"""The overview: jobs per hour over the last day, recent failures, dead letters and connections that need
re-authorisation."""
from __future__ import annotations

from console.blueprints import tenant as blp
from console.guard import requires
from console.pages import render
from core.connections import store
from core.jobs import service as jobs
from core.jobs import stats
from core.outbound import service as deliveries

HOURS = 24


@blp.get("/overview")
@requires("VIEWER")
def overview():
    hourly = stats.jobs_per_hour(hours=HOURS)
    peak = max([h["total"] for h in hourly] or [0])
    return render("overview.html", hourly=hourly, peak=peak, hours=HOURS,
                  failures=jobs.list_jobs(limit=5, status=jobs.FAILED),
                  dead_letters=deliveries.list_deliveries(limit=5, status="dead"),
                  reauth=store.list_connections(limit=20, status="reauth_required"),
                  pending=[c for c in store.list_connections(limit=50) if c.status in ("pending", "select_account")])
