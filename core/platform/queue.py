"""The Celery app every process publishes through; tasks themselves live in `workers/`."""
from __future__ import annotations

import ssl
from urllib.parse import parse_qs, urlsplit

import redis
from kombu import Exchange, Queue, pools
from kombu.transport import redis as kombu_redis

from core.platform.config import Settings
from core.platform.logs import install_celery_propagation
from tenancy.celery import TenantCelery
from tenancy.db import get_router
from tenancy.provisioning import load_tenant_ref

# Notifications have their own queue on the same broker, so a Novu outage (tasks waiting out their backoff) never
# queues ahead of jobs, and notification workers can be run and scaled apart (`zixly worker -Q notifications`).
# A worker given no -Q consumes all three.
# Deliveries to tenants' subscription endpoints likewise (`webhooks`): a slow endpoint waits there, not before jobs.
NOTIFICATIONS_QUEUE = "notifications"
WEBHOOKS_QUEUE = "webhooks"
QUEUES = tuple(Queue(name, Exchange(name), routing_key=name) for name in ("zixly", NOTIFICATIONS_QUEUE, WEBHOOKS_QUEUE))
ROUTES = {"zixly.tenant.send_notification": {"queue": NOTIFICATIONS_QUEUE},
          "zixly.tenant.deliver_webhook": {"queue": WEBHOOKS_QUEUE},
          "zixly.tenant.replay_webhooks": {"queue": WEBHOOKS_QUEUE}}


class _Channel(kombu_redis.Channel):
    """kombu's Redis channel builds a new `redis.Redis` for every message it publishes (registering some 170
    response callbacks each time: ~4 % of a webhook's CPU). This one keeps one per connection pool: a client is
    thread-safe, the pool does the sharing, and a new pool (after a reconnect) gets a new client."""

    _publish_client = None

    def _create_client(self, asynchronous=False):
        if self.connection is None or self.connection.client is None:
            # The connection was collected after a broker error, and Celery's consumer then closes it: closing
            # the channel restores its unacknowledged messages, and kombu would build a pool from the cleared
            # connection info (AttributeError: 'NoneType' object has no attribute 'hostname'), an "Unrecoverable
            # error" that ends the worker process. A connection error is what Celery expects and ignores here;
            # the messages stay in the unacked index and are restored by visibility timeout.
            raise redis.exceptions.ConnectionError("the broker connection was closed")
        if asynchronous:
            return super()._create_client(asynchronous=True)
        client = self._publish_client
        if client is None or client.connection_pool is not self.pool:
            client = self._publish_client = super()._create_client()
        return client


class Transport(kombu_redis.Transport):
    Channel = _Channel


def _tls_options(url: str) -> dict | None:
    """For a rediss:// broker: verify the server's certificate unless the URL says otherwise. (kombu derives TLS
    from the scheme only for its own transport name; with ours it comes from broker_use_ssl or the URL's
    ssl_cert_reqs, and kombu's default without either is CERT_NONE.)"""
    if not url.startswith("rediss://"):
        return None
    if "ssl_cert_reqs" in parse_qs(urlsplit(url).query):
        return None  # Celery reads it from the URL
    return {"ssl_cert_reqs": ssl.CERT_REQUIRED}


celery_app = TenantCelery("zixly", load_tenant=lambda slug: load_tenant_ref(get_router(), slug))
install_celery_propagation(celery_app)


def configure(settings: Settings) -> None:
    if celery_app.conf.broker_url and celery_app.conf.broker_url != settings.redis_url:
        pools.reset()  # pooled broker connections (kombu keeps a global registry) point at the old server
        celery_app._pool = None
        celery_app.amqp._producer_pool = None
        # the result backend too (it would keep reconnecting to the old server): Celery caches it per app (if
        # thread-safe) or per thread; this thread's is dropped, other threads' are theirs
        celery_app._backend_cache = None
        celery_app._local.__dict__.pop("backend", None)
    celery_app.conf.update(
        broker_url=settings.redis_url,
        # redis:// and rediss:// alike (TLS from the URL's ssl_cert_reqs, or verified by default)
        broker_transport="core.platform.queue:Transport" if settings.redis_url.startswith(("redis://", "rediss://"))
        else None,
        broker_use_ssl=_tls_options(settings.redis_url),
        result_backend=settings.redis_url,
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_acks_late=True,  # a task lost with its worker is redelivered, not dropped
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_concurrency=settings.worker_processes,
        task_default_queue="zixly",
        task_queues=QUEUES,
        task_routes=ROUTES,
        broker_connection_retry_on_startup=True,
        # short socket timeouts: a publish while Redis is down fails fast and the outbox keeps the message
        broker_transport_options={"visibility_timeout": settings.broker_visibility_timeout,
                                  "socket_connect_timeout": 1, "socket_timeout": 5,
                                  # sweep for messages of dead workers every few seconds, not every 100 s
                                  "unacked_restore_interval": max(1, min(10, settings.broker_visibility_timeout // 3)),
                                  "unacked_restore_throttle": 1},
        broker_connection_timeout=1,
        task_publish_retry=False,
        result_expires=86400,
        timezone="UTC",
        beat_schedule={
            "prune-idempotency-records": {"task": "zixly.fleet.prune_idempotency_records", "schedule": 3600.0},
            "relay-outbox": {"task": "zixly.fleet.relay_outbox", "schedule": 10.0},
            "enforce-retention": {"task": "zixly.fleet.enforce_retention", "schedule": 3600.0},
            # the raw inbox's fallback: the listener (`zixly inbox`) fans deliveries out at once; this finds the
            # ones kept while none ran
            "drain-inboxes": {"task": "zixly.fleet.drain_inboxes", "schedule": 5.0},
            "sweep-stranded-jobs": {"task": "zixly.fleet.sweep_stranded_jobs", "schedule": 60.0},
            "relay-outbound": {"task": "zixly.fleet.relay_outbound", "schedule": 15.0},
            "requeue-stale-notifications": {"task": "zixly.fleet.requeue_stale_notifications", "schedule": 300.0},
            "refill-schema-pool": {"task": "zixly.fleet.refill_schema_pool", "schedule": 60.0},
            "schedule-polls": {"task": "zixly.fleet.schedule_polls", "schedule": 30.0},
            "sweep-webhooks": {"task": "zixly.fleet.sweep_webhooks", "schedule": 30.0},
            "prune-webhooks": {"task": "zixly.fleet.prune_webhooks", "schedule": 3600.0},
        },
    )
