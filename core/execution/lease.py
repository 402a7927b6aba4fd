"""A claimed job's lease: the worker that claimed a job holds it until `lease_expires_at`, renewed while it runs.

Invariant: at most one run of a job holds a live lease. The claim (core.execution.service) takes a job only when
its lease is absent or has lapsed, every step record renews it in the same statement, and a heartbeat renews it
while one step takes long; a run that finds its lease gone (another claim took the job, or it was cancelled)
stops before its next step and does not record an outcome.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import uuid

from sqlalchemy import Float, bindparam, func, update

from core.jobs.models import Job
from core.jobs.statuses import RUNNING
from core.platform.runtime import settings
from tenancy.context import current_tenant, tenant_context
from tenancy.db import tenant_autocommit

log = logging.getLogger("zixly.jobs")
_JOBS = Job.__table__


class LeaseLost(Exception):
    """This run no longer holds the job: another claim took it after the lease lapsed, or it was cancelled."""


def new_owner() -> str:
    """A name for one claim: the host and process (for people reading the row) and a random part (two threads of
    one process are two owners)."""
    return f"{socket.gethostname()[:80]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def lease_end():
    """`now() + :lease_seconds`, the expiry a claim or a renewal writes (in the database's clock, the one every
    worker compares with)."""
    return func.now() + func.make_interval(0, 0, 0, 0, 0, 0, bindparam("lease_seconds", type_=Float))


def held_by_owner():
    """The WHERE of every write only the holder may make."""
    return (_JOBS.c.id == bindparam("job_id", type_=_JOBS.c.id.type), _JOBS.c.status == RUNNING,
            _JOBS.c.lease_owner == bindparam("owner", type_=_JOBS.c.lease_owner.type))


_RENEW = update(_JOBS).where(*held_by_owner()).values(lease_expires_at=lease_end())


class Lease:
    """The lease of one run: renewed by a heartbeat thread every third of its length while the run lasts (a job
    shorter than that never pays for one); `lost` once a renewal finds the job no longer held."""

    def __init__(self, job_id, owner: str, seconds: float | None = None):
        self.job_id, self.owner = job_id, owner
        self.seconds = float(seconds if seconds is not None else settings().job_lease_seconds)
        self.lost = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def params(self) -> dict:
        return {"job_id": self.job_id, "owner": self.owner, "lease_seconds": self.seconds}

    def __enter__(self) -> Lease:
        tenant = current_tenant()
        self._thread = threading.Thread(target=self._beat, args=(tenant,), name=f"lease-{self.job_id}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def check(self) -> None:
        if self.lost:
            raise LeaseLost(f"job {self.job_id} is no longer held by {self.owner}")

    def _beat(self, tenant) -> None:
        with tenant_context(tenant):
            while not self._stop.wait(self.seconds / 3):
                try:
                    self.renew()
                except LeaseLost:
                    return
                except Exception as exc:  # the database is briefly away: try again at the next beat
                    log.warning("could not renew the lease of job %s: %s", self.job_id, exc)

    def renew(self) -> None:
        with tenant_autocommit() as connection:
            if connection.execute(_RENEW, self.params()).rowcount == 0:
                self.lost = True
                raise LeaseLost(f"job {self.job_id} is no longer held by {self.owner}")
