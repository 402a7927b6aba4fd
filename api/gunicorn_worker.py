"""gunicorn's gthread worker, except that what gunicorn answers itself is a problem document too.

gunicorn refuses some requests before the app sees them (a request line over `limit_request_line`: 414;
headers over `limit_request_field_size` / `limit_request_fields`: 431; not HTTP at all: 400) and answers
an error that escaped the app with a 500, all as HTML without an `X-Request-ID`. Invariant: every response
this worker writes is `application/problem+json` (RFC 9457) with an `X-Request-ID`. gunicorn still decides
the status and logs the refusal; only the bytes on the wire are ours.
"""
from __future__ import annotations

import json
import logging
import uuid

from gunicorn.workers.gthread import ThreadWorker

from api.problems import MEDIA_TYPE, PROBLEM_BASE

DETAILS = {
    400: ("bad-request", "The request is not valid HTTP."),
    403: ("forbidden", "The request is refused."),
    414: ("uri-too-long", "The request line (method, path and query) is longer than the server accepts."),
    417: ("expectation-failed", "The `Expect` header is not one the server supports."),
    431: ("request-header-fields-too-large", "A request header is larger than the server accepts, or there are "
                                             "too many headers."),
    501: ("not-implemented", "The request uses a transfer coding the server does not support."),
}
INTERNAL = ("internal-error", "An unexpected error occurred; it has been logged.")

log = logging.getLogger("zixly.api")


class _StatusLine:
    """Stands in for the client socket while gunicorn writes its HTML error, to learn the status it chose."""

    def __init__(self):
        self.data = b""

    def gettimeout(self):
        return 0.0

    def setblocking(self, _flag):
        pass

    def sendall(self, data):
        self.data += data

    def status(self) -> tuple[int, str]:
        line = self.data.split(b"\r\n", 1)[0].decode("latin-1")  # "HTTP/1.1 414 URI Too Long"
        parts = line.split(" ", 2)
        try:
            return int(parts[1]), parts[2] if len(parts) > 2 else ""
        except (IndexError, ValueError):
            return 500, "Internal Server Error"


def problem_bytes(status: int, reason: str, request_id: str) -> bytes:
    code, detail = DETAILS.get(status, INTERNAL) if status != 500 else INTERNAL
    body = json.dumps({"type": PROBLEM_BASE + code, "title": reason or code.replace("-", " ").capitalize(),
                       "status": status, "detail": detail, "request_id": request_id}).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: {MEDIA_TYPE}\r\n"
            f"Content-Length: {len(body)}\r\nX-Request-ID: {request_id}\r\n\r\n")
    return head.encode("latin-1") + body


class ProblemThreadWorker(ThreadWorker):
    def handle_error(self, req, client, addr, exc):
        captured = _StatusLine()
        super().handle_error(req, captured, addr, exc)  # gunicorn's status choice, access log and warning
        status, reason = captured.status()
        request_id = uuid.uuid4().hex  # the client's X-Request-ID may be what was malformed: never echoed
        log.info("request refused by the server layer", extra={"status": status, "request_id": request_id})
        try:
            client.sendall(problem_bytes(status, reason, request_id))
        except OSError:
            self.log.debug("Failed to send error message.")
