"""How many jobs a tenant ran lately, per hour and by outcome: what the console's overview shows.

Invariant: counts are read in one statement within the current tenant's schema, for the `hours` hours up to
the database's `now()`; hours without jobs are not returned (the caller fills the gaps).
"""
from __future__ import annotations

from sqlalchemy import func, select

from core.jobs.models import Job
from core.jobs.statuses import FAILED
from tenancy.db import tenant_session


def jobs_per_hour(*, hours: int = 24) -> list[dict]:
    """[{hour, total, failed}] for the last `hours` hours, oldest first."""
    hour = func.date_trunc("hour", Job.created_at).label("hour")
    query = (select(hour, func.count().label("total"),
                    func.count().filter(Job.status == FAILED).label("failed"))
             .where(Job.created_at >= func.now() - func.make_interval(0, 0, 0, 0, hours))
             .group_by(hour).order_by(hour))
    with tenant_session() as session:
        return [{"hour": row.hour, "total": row.total, "failed": row.failed} for row in session.execute(query)]
