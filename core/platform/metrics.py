"""Every Prometheus metric Zixly exports, defined once, for the API, the workers and the outbound consumer.

THE LABEL RULE. A label's values must come from a small set the code controls: provider, workflow, plan,
status, reason, queue, scope. A tenant may appear as a label ONLY on counters (one series per tenant and
status, a few thousand at most), NEVER on histograms or gauges — a histogram multiplies every label value by
its buckets, and an id that grows with the business (tenant, job, connection, account) would grow the
series without bound. Free-form strings (paths, error messages, ids) are never label values; HTTP metrics
use the route's rule (`/v1/jobs/<job_id>`), not the path.

Multi-process: under gunicorn and Celery's prefork pool each process writes its samples to files in
PROMETHEUS_MULTIPROC_DIR and the scrape endpoint aggregates them (see `registry_for_scrape`). The names here
are the contract that prometheus/alerts.yml and grafana/dashboards use (prometheus/metric_names.txt).
"""
from __future__ import annotations

import logging
import os
import time

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, multiprocess
from prometheus_client.core import GaugeMetricFamily

log = logging.getLogger("zixly.metrics")

JOB_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
CALL_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20)

# -- webhooks -------------------------------------------------------------------------------------------------
webhooks_received = Counter("zixly_webhooks_received_total", "Webhook deliveries received", ["provider"])
webhooks_verified = Counter("zixly_webhooks_verified_total", "Webhook deliveries whose signature verified",
                            ["provider"])
webhooks_rejected = Counter("zixly_webhooks_rejected_total", "Webhook deliveries refused",
                            ["provider", "reason"])
webhooks_unrouted = Counter("zixly_webhooks_unrouted_total",
                            "Verified app-level events for an account no connection owns (acknowledged, dropped)",
                            ["provider"])
events_deduplicated = Counter("zixly_events_deduplicated_total", "Events already in the inbox (not stored again)",
                              ["provider"])
# the raw inbox (core.inbound.processor): deliveries kept by the hook path, fanned out to events and jobs behind it
inbox_processed = Counter("zixly_inbox_processed_total", "Raw deliveries fanned out to events and jobs")
inbox_lag = Histogram("zixly_inbox_lag_seconds", "From a raw delivery's commit to its fan-out",
                      buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
inbox_set_aside = Counter("zixly_inbox_set_aside_total", "Raw deliveries whose fan-out failed (kept, marked)",
                          ["provider"])

# -- jobs -----------------------------------------------------------------------------------------------------
jobs_queued = Counter("zixly_jobs_queued_total", "Jobs created", ["workflow"])
jobs_started = Counter("zixly_jobs_started_total", "Job attempts started", ["workflow"])
jobs_completed = Counter("zixly_jobs_completed_total", "Jobs completed", ["workflow"])
jobs_failed = Counter("zixly_jobs_failed_total", "Jobs failed for good", ["workflow"])
jobs_swept = Counter("zixly_jobs_swept_total", "Stranded jobs re-published by the sweeper (queued: the broker lost "
                     "their task; lease_expired: a RUNNING job's worker and task are gone)", ["reason"])
retention_deleted = Counter("zixly_retention_deleted_total", "Rows deleted by the plan's retention (kind: events, "
                            "jobs, job_steps, deliveries, notifications)", ["kind"])
job_duration = Histogram("zixly_job_duration_seconds", "Time of one job attempt", ["workflow"],
                         buckets=JOB_BUCKETS)
# the one tenant-labelled family: a counter, so one series per (tenant, status) — bounded by the fleet
tenant_jobs = Counter("zixly_tenant_jobs_total", "Jobs finished per tenant", ["tenant", "status"])

# -- queues (sampled at scrape time by QueueDepthCollector) ---------------------------------------------------
celery_queue_depth = "zixly_celery_queue_depth"
sqs_queue_depth = "zixly_sqs_queue_depth"
sqs_dead_letter_depth = "zixly_sqs_dead_letter_depth"
sqs_calls = Counter("zixly_sqs_calls_total", "Round trips to SQS made by this process, by operation", ["operation"])

# -- providers ------------------------------------------------------------------------------------------------
outbound_requests = Counter("zixly_outbound_requests_total", "Calls to provider APIs", ["provider", "status"])
outbound_duration = Histogram("zixly_outbound_request_duration_seconds", "Latency of provider API calls",
                              ["provider"], buckets=CALL_BUCKETS)
# outbound deliveries (core.outbound.delivery): delivered | failed | dead | retried | rate_limited | paced | duplicate
deliveries = Counter("zixly_deliveries_total", "Outbound deliveries handled, by outcome", ["provider", "status"])
delivery_latency = Histogram("zixly_delivery_latency_seconds",
                             "From a delivery's request to its confirmed write (queueing, pacing, retries included)",
                             ["provider"], buckets=JOB_BUCKETS)
# the per-connection token buckets (Redis, shared by every consumer): how often a delivery had to wait for its
# connection's budget ("quota") or was pushed back by the provider itself ("provider_429")
outbound_budget_waits = Counter("zixly_outbound_budget_waits_total",
                                "Deliveries held back by a connection's budget", ["provider", "reason"])
token_refreshes = Counter("zixly_token_refreshes_total", "OAuth token refreshes done", ["provider"])
token_refresh_failures = Counter("zixly_token_refresh_failures_total", "OAuth token refreshes that failed",
                                 ["provider"])

# -- event subscriptions (core.subscriptions) ------------------------------------------------------------------
# outcome: delivered | retrying | failed (given up) | gone (410: disabled) | refused (unsendable) | paced
webhook_attempts = Counter("zixly_webhook_attempts_total", "Deliveries to tenants' subscription endpoints, by outcome",
                           ["outcome"])
webhook_latency = Histogram("zixly_webhook_delivery_seconds",
                            "From an event's commit to its receiver's 2xx (retries included)", buckets=JOB_BUCKETS)
webhook_subscriptions_disabled = Counter("zixly_webhook_subscriptions_disabled_total",
                                         "Subscriptions disabled by Zixly", ["reason"])
# written by the sweeper (core.subscriptions.sweeper) to Redis each run, read at scrape by RedisGaugeCollector
webhook_oldest_undelivered = "zixly_webhook_oldest_undelivered_seconds"
WEBHOOK_OLDEST_KEY = "zixly:webhooks:oldest-undelivered-seconds"

# -- notifications and limits ---------------------------------------------------------------------------------
notifications = Counter("zixly_notifications_total", "Notifications by outcome", ["status"])
rate_limit_rejections = Counter("zixly_rate_limit_rejections_total", "Requests refused by a rate limit",
                                ["plan", "scope"])
rate_limit_storage_errors = Counter("zixly_rate_limit_storage_errors_total",
                                    "Rate-limit checks skipped because Redis was unreachable (failed open)")
rate_limit_storage_errors.inc(0)


def observe_outbound(provider: str, method: str, status, seconds: float) -> None:
    """The connectors' response hook: one sample per provider call (status 0 = no response)."""
    outbound_requests.labels(provider, str(status or "error")).inc()
    outbound_duration.labels(provider).observe(seconds)


class QueueDepthCollector:
    """Samples queue depths when scraped (cached a few seconds so a busy Prometheus cannot hammer Redis/SQS)."""

    def __init__(self, celery_queues, redis_client=None, sqs_client=None, sqs_queues=(), ttl: float = 10.0):
        self.celery_queues, self.redis, self.sqs, self.sqs_queues = celery_queues, redis_client, sqs_client, sqs_queues
        self.ttl, self._cached_at, self._cached = ttl, 0.0, []

    def _sample(self):
        celery = GaugeMetricFamily(celery_queue_depth, "Messages waiting in a Celery queue", labels=["queue"])
        sqs = GaugeMetricFamily(sqs_queue_depth, "Messages waiting in an SQS queue", labels=["queue"])
        dlq = GaugeMetricFamily(sqs_dead_letter_depth, "Messages in an SQS dead-letter queue", labels=["queue"])
        for queue in self.celery_queues:
            try:
                celery.add_metric([queue], float(self.redis.llen(queue)))
            except Exception:  # a scrape never fails because a broker is down; the series just goes missing
                log.debug("celery queue depth unavailable", exc_info=True)
        for name, url in self.sqs_queues:
            try:
                attrs = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
                depth = float(attrs["Attributes"]["ApproximateNumberOfMessages"])
                (dlq if name.endswith("-dlq.fifo") or name.endswith("-dlq") else sqs).add_metric([name], depth)
            except Exception:
                log.debug("sqs queue depth unavailable", exc_info=True)
        return [celery, sqs, dlq]

    def collect(self):
        if time.monotonic() - self._cached_at > self.ttl:
            self._cached, self._cached_at = self._sample(), time.monotonic()
        return self._cached


class RedisGaugeCollector:
    """A fleet-wide gauge a periodic task computes and leaves in Redis (with an expiry: a stopped task's value
    goes missing rather than lying), read at scrape."""

    def __init__(self, name: str, documentation: str, key: str, redis_client):
        self.name, self.documentation, self.key, self.redis = name, documentation, key, redis_client

    def collect(self):
        gauge = GaugeMetricFamily(self.name, self.documentation)
        try:
            value = self.redis.get(self.key)
        except Exception:
            log.debug("%s unavailable", self.name, exc_info=True)
            value = None
        if value is not None:
            gauge.add_metric([], float(value))
        return [gauge]


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir")


def registry_for_scrape(extra_collectors=()) -> CollectorRegistry:
    """The registry a /metrics endpoint serves: aggregated over processes in multiprocess mode."""
    if multiprocess_dir():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    for collector in extra_collectors:
        try:
            registry.register(collector)
        except ValueError:  # already registered
            pass
    return registry
