"""Worker entry point: `celery -A workers.app worker`. Boots the runtime and registers the tasks.

The main process serves Prometheus metrics (aggregated over the prefork children, plus queue depths) on
ZIXLY_WORKER_METRICS_PORT when it is set.
"""
from __future__ import annotations

import logging
import os

from celery import signals
from prometheus_client import start_http_server

from core import bootstrap
from core.outbound import queues
from core.platform import aws, logs, runtime
from core.platform.config import Settings
from core.platform.metrics import (
    WEBHOOK_OLDEST_KEY,
    QueueDepthCollector,
    RedisGaugeCollector,
    registry_for_scrape,
    webhook_oldest_undelivered,
)
from core.platform.queue import WEBHOOKS_QUEUE, celery_app

_settings = bootstrap.init(Settings.from_env())
logs.configure(_settings.log_level, _settings.log_format)

import workers.inbox  # noqa: E402,F401  (registers tasks)
import workers.jobs  # noqa: E402,F401
import workers.maintenance  # noqa: E402,F401
import workers.notifications  # noqa: E402,F401
import workers.outbound  # noqa: E402,F401
import workers.subscriptions  # noqa: E402,F401

app = celery_app
log = logging.getLogger("zixly.worker")


@signals.worker_ready.connect(weak=False)
def _serve_metrics(sender=None, **_):
    port = runtime.settings().worker_metrics_port
    if not port:
        return
    collector = QueueDepthCollector([celery_app.conf.task_default_queue, WEBHOOKS_QUEUE],
                                    redis_client=runtime.redis_client(), sqs_client=queues.sqs_client(),
                                    sqs_queues=_outbound_queues())
    lag = RedisGaugeCollector(webhook_oldest_undelivered, "How long the most overdue subscription message has waited "
                              "past its due time (fleet-wide, set by the webhook sweeper)", WEBHOOK_OLDEST_KEY,
                              runtime.redis_client())
    start_http_server(port, registry=registry_for_scrape([collector, lag]))
    log.info("worker metrics on :%s", port)


def _outbound_queues() -> list[tuple[str, str]]:
    """Every outbound queue and dead-letter queue; none when SQS cannot say (the scrape goes on without them)."""
    try:
        return [(queues.queue_name(provider, dead=dead), queues.queue_url(provider, dead=dead))
                for provider in aws.OUTBOUND_PROVIDERS for dead in (False, True)]
    except Exception as exc:
        log.warning("outbound queue depths left out of the metrics: %s", exc)
        return []


@signals.worker_process_shutdown.connect(weak=False)
def _forget_process(pid=None, **_):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid or os.getpid())
