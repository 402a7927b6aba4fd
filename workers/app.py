"""Worker entry point: `celery -A workers.app worker`. Boots the runtime and registers the tasks."""
from __future__ import annotations

from core import runtime
from core.config import Settings
from core.queue import celery_app

runtime.init(Settings.from_env())

import workers.jobs  # noqa: E402,F401  (registers tasks)
import workers.maintenance  # noqa: E402,F401
import workers.notifications  # noqa: E402,F401

app = celery_app
