"""Fair turns between tenants: a job to run joins its tenant's sub-queue in Redis, and workers take the next job
from the tenants in turn (round-robin), so one tenant's backlog delays another tenant's next job by at most one
job per worker, whatever the backlog's length.

Why this shape (and not one Celery queue per tenant, or a claim across schemas): Celery's one FIFO queue keeps
what it is good at (delivery to workers, acks late, redelivery of a dead worker's message, retries), but what
it carries is a *turn* (the `zixly.fleet.run_next_job` task, no arguments), not a job: each job admitted adds
one entry to its tenant's sub-queue and then one turn to Celery. A worker given a turn takes the head job of the
tenant at the head of the ring of tenants with work, and moves that tenant to the ring's tail; a tenant that
had nothing waiting joins at the head. Turns are interchangeable, so B's job admitted behind 10,000 of A's turns
is taken by the next turn. Per-tenant Celery queues would need every worker to subscribe to every tenant's queue
as tenants come and go; a fair claim in the database would have to look into every tenant's schema for each job.

Invariants:
- Round-robin: a tenant with work waiting is served again only after every other tenant with work was served
  once. A tenant that had none joins at the head, like a new flow in fq_codel: its first job goes next, then it
  rotates to the tail like any other (so only a stream of ever new tenants could keep a backlog waiting).
- A sub-queue holds a job at most once (a set beside the list), and every admission sends a turn after its
  entry was written, so turns >= entries: no entry waits for a turn that never comes. A turn with nothing to
  take is a no-op. (A broker error between the two leaves the outbox row for the relay, which admits again:
  the entry is not repeated, the turn is sent.)
- A turn taken is remembered under the turn's Celery task id until it is released, so the same message
  delivered again (a worker died mid-job; a retry of the task after a transient error keeps its id) runs the
  same job, not the next one.
- Redis losing its data loses entries and turns together; the sweeper (core.jobs.sweeper) re-admits the jobs
  still QUEUED. Running a job twice is harmless anyway: a claim runs a job once (core.execution).

The keys of one tenant are named by `tenant_key`; the ring and the active set name no tenant. The scripts
address keys the ring names, so they need one Redis server (not Redis Cluster), which is what the broker is.
"""
from __future__ import annotations

from dataclasses import dataclass

from core.platform.logs import request_id_var
from core.platform.queue import celery_app
from core.platform.runtime import redis_client
from tenancy.context import current_tenant, tenant_key

RUN_JOB = "zixly.tenant.run_job"  # (job_id): admit the job; published with a countdown, it admits when due
TURN_TASK = "zixly.fleet.run_next_job"  # (): take the next tenant's next job and run it
RING, ACTIVE = "zixly:fair:ring", "zixly:fair:active"
TAKEN = "zixly:fair:taken:"
TAKEN_SECONDS = 7 * 86400  # a turn's job is remembered at most this long (released when the turn ends)

# KEYS: ring, active set, the tenant's jobs list, its members set; ARGV: the tenant's key prefix, the job id, the
# entry ("slug job_id request_id")
_ADMIT = """
if redis.call('SADD', KEYS[4], ARGV[2]) == 1 then redis.call('RPUSH', KEYS[3], ARGV[3]) end
if redis.call('SADD', KEYS[2], ARGV[1]) == 1 then redis.call('LPUSH', KEYS[1], ARGV[1]) end
return redis.call('LLEN', KEYS[3])
"""

# KEYS: ring, active set, this turn's taken key; ARGV: how long a taken turn is remembered
_TAKE = """
local held = redis.call('GET', KEYS[3])
if held then return held end
for _ = 1, 1000 do
  local prefix = redis.call('LPOP', KEYS[1])
  if not prefix then return false end
  local jobs, members = prefix .. ':jobs', prefix .. ':members'
  local entry = redis.call('LPOP', jobs)
  if redis.call('LLEN', jobs) > 0 then redis.call('RPUSH', KEYS[1], prefix) else redis.call('SREM', KEYS[2], prefix) end
  if entry then
    redis.call('SREM', members, string.match(entry, '^%S+ (%S+)'))
    redis.call('SET', KEYS[3], entry, 'EX', ARGV[1])
    return entry
  end
end
return false
"""


@dataclass(frozen=True)
class Turn:
    slug: str
    job_id: str
    request_id: str | None  # of the request that admitted the job (a turn may have been sent by another's)


def _prefix() -> str:
    return tenant_key("fair")


def admit(job_id: str) -> int:
    """Queue the current tenant's job for its turn, then send a turn; answers the tenant's sub-queue length.
    Raises the broker's error when Redis cannot be reached (the caller's outbox row then waits for the relay)."""
    prefix = _prefix()
    entry = f"{current_tenant().slug} {job_id} {request_id_var.get() or '-'}"
    waiting = redis_client().eval(_ADMIT, 4, RING, ACTIVE, f"{prefix}:jobs", f"{prefix}:members", prefix, job_id,
                                  entry)
    celery_app.send_task(TURN_TASK, retry=False, ignore_result=True)
    return int(waiting)


def take(turn_id: str) -> Turn | None:
    """The job this turn runs: the one it took before (a redelivery or a retry of the same turn), else the next
    tenant's head job; None when no tenant has one waiting."""
    entry = redis_client().eval(_TAKE, 3, RING, ACTIVE, TAKEN + turn_id, TAKEN_SECONDS)
    if entry is None:
        return None
    slug, job_id, request_id = (entry.decode().split(" ") + ["-"])[:3]
    return Turn(slug, job_id, None if request_id == "-" else request_id)


def release(turn_id: str) -> None:
    """The turn is over (its job finished, or was put off by the claim): the next delivery of it takes anew."""
    redis_client().delete(TAKEN + turn_id)


def waiting() -> int:
    """How many of the current tenant's jobs wait for a turn."""
    return int(redis_client().llen(f"{_prefix()}:jobs"))


def forget_tenant() -> None:
    """Take the current tenant out of the ring (its tenant is being erased; its own keys are deleted by name)."""
    prefix = _prefix()
    pipe = redis_client().pipeline()
    pipe.lrem(RING, 0, prefix).srem(ACTIVE, prefix).delete(f"{prefix}:jobs", f"{prefix}:members")
    pipe.execute()
