"""Structured logs: one JSON object per line with time, level, tenant, request id, job id and event.

The request id comes from `X-Request-ID` (or is minted), is returned in the response, and travels in a
Celery header into every task the request starts, so one id follows a webhook from ingress to the job.
Nothing secret is logged by design; as a second line of defence the formatter masks anything shaped like
an API key, a webhook secret, a hook token or a bearer token.
"""
from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from datetime import UTC, datetime

from tenancy.context import current_tenant_or_none

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("zixly_request_id", default=None)
job_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("zixly_job_id", default=None)
REQUEST_ID_HEADER = "zixly_request_id"

_SECRET = re.compile(r"(zx_(?:live|test)_[A-Za-z0-9_\-]{8,}|whsec_[A-Za-z0-9+/=]{8,}|wh_[A-Za-z0-9_\-]{20,}"
                     r"|(?i:bearer)\s+[A-Za-z0-9._\-]{16,})")
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


def redact(text: str) -> str:
    return _SECRET.sub(lambda m: m.group(0)[:8] + "…[redacted]", text)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        tenant = current_tenant_or_none()
        doc = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": getattr(record, "event", None) or record.name.rsplit(".", 1)[-1],
            "message": redact(record.getMessage()),
            "tenant": tenant.slug if tenant else None,
            "request_id": request_id_var.get(),
            "job_id": job_id_var.get(),
        }
        for key, value in record.__dict__.items():  # `extra=` fields, kept if JSON-safe
            if key not in _STANDARD and key not in doc and not key.startswith("_"):
                doc[key] = value if isinstance(value, (int, float, bool, type(None))) else redact(str(value))
        if record.exc_info:
            doc["error"] = redact(f"{record.exc_info[0].__name__}: {record.exc_info[1]}")
            if record.levelno >= logging.ERROR:  # an operator needs to know where (a log line, never a response)
                doc["stack"] = redact(self.formatException(record.exc_info))
        return json.dumps(doc, default=str)


def configure(level: str = "INFO", fmt: str = "json", stream=None) -> None:
    """Route the root logger through one handler (JSON by default; `text` for reading by eye)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_zixly", False):
            root.removeHandler(old)
    handler._zixly = True
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)  # warnings (a library's, Celery's run-as-root one) are log lines too


def install_celery_propagation(app) -> None:
    """Carry the request id into tasks (publish side) and restore it, with the job id, in the worker."""
    from celery import signals

    @signals.before_task_publish.connect(weak=False)
    def _add_request_id(headers=None, **_):
        rid = request_id_var.get()
        if rid and headers is not None:
            headers[REQUEST_ID_HEADER] = rid

    @signals.task_prerun.connect(weak=False)
    def _restore(task=None, args=None, **_):
        request = getattr(task, "request", None)
        rid = getattr(request, REQUEST_ID_HEADER, None) or (getattr(request, "headers", None) or {}).get(
            REQUEST_ID_HEADER)
        request_id_var.set(rid)
        job_id_var.set(str(args[0]) if args and task.name.endswith("run_job") else None)

    @signals.setup_logging.connect(weak=False)
    def _keep_our_logging(**_):
        """With a receiver here Celery leaves the root logger (our JSON handler) alone instead of replacing it."""

    @signals.task_postrun.connect(weak=False)
    def _clear(**_):
        request_id_var.set(None)
        job_id_var.set(None)
