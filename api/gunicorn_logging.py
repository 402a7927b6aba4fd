"""gunicorn's own log lines (start-up, workers booting, timeouts) as the JSON lines every Zixly process writes
(core.platform.logs), so a log reader sees one format; `ZIXLY_LOG_FORMAT=text` keeps gunicorn's own."""
from __future__ import annotations

from gunicorn.glogging import Logger

from core.platform.logs import JsonFormatter


class JsonLogger(Logger):
    """gunicorn's error log with its handlers writing JSON lines (it has no access log: api/gunicorn_conf.py)."""

    def setup(self, cfg):
        super().setup(cfg)
        for handler in self.error_log.handlers:
            handler.setFormatter(JsonFormatter())
