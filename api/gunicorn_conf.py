"""gunicorn settings for the API: Prometheus multiprocess bookkeeping, no access log (tokens live in
webhook paths; the app writes its own JSON request log with the route, never the path; gunicorn's own lines are
JSON too, api/gunicorn_logging.py), and request limits
whose refusals are problem documents like every other answer (api/gunicorn_worker.py)."""
import os
import shutil

bind = os.environ.get("ZIXLY_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", 2))
threads = int(os.environ.get("ZIXLY_THREADS", 4))
worker_class = "api.gunicorn_worker.ProblemThreadWorker"  # gthread; its own refusals as problem+json
limit_request_line = 4094  # bytes of method, path and query: longer is a 414
limit_request_field_size = 8190  # bytes of one header: larger is a 431
limit_request_fields = 100  # headers: more is a 431
graceful_timeout = 30
accesslog = None
if os.environ.get("ZIXLY_LOG_FORMAT", "json") == "json":  # the default, as Settings reads it
    logger_class = "api.gunicorn_logging.JsonLogger"


def on_starting(server):
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:  # samples of a previous run must not be aggregated into this one
        shutil.rmtree(path, ignore_errors=True)
        os.makedirs(path, exist_ok=True)


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
