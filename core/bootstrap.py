"""The one place a process is wired (API, worker, outbound consumer, CLI): settings, database routing and Redis,
the Celery app, the data keys, and the receivers that connect one domain to another. Nothing is wired at
import time and no module attribute is patched: what runs when is read here, top to bottom.

`init` is idempotent for the same settings, and re-points everything when given new ones (tests do).
"""
from __future__ import annotations

from core import tables  # noqa: F401  (every tenant table in the metadata: foreign keys across domains resolve)
from core.connections import providers
from core.notify import receivers
from core.outbound import delivery
from core.platform import crypto, queue, runtime
from core.platform.config import Settings


def init(settings: Settings) -> Settings:
    if runtime.current() == settings:
        return settings
    runtime.init(settings)
    queue.configure(settings)
    crypto.configure(spec=settings.data_keys, secret_id=settings.data_keys_secret_id,
                     secrets_client=runtime.aws_client("secretsmanager") if settings.data_keys_secret_id else None)
    _connect_receivers()
    return settings


def _connect_receivers() -> None:
    receivers.connect()  # domain signals -> notifications (each receiver only records; core.notify.receivers)
    providers.add_response_hook(delivery.remember_status)  # a delivery records the provider's status code
