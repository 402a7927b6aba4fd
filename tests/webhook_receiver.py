"""A tenant's endpoint, locally: an HTTP server that verifies every delivery with the official `standardwebhooks`
package (not Zixly's code) under the secrets a test gives it, records what arrived, and answers from a script.

Paths are endpoints: each has its own secrets and script (entries used in order, then `default`): an int is that
status; ("status", headers) adds headers (Retry-After); ("sleep", seconds) waits before answering 200. A delivery
no configured secret verifies is answered 401 and recorded with `verified_by == []`.
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass
class Arrival:
    path: str
    msg_id: str
    body: dict
    headers: dict
    verified_by: list
    answer: int
    at: float


@dataclass
class Receiver:
    default: int | tuple = 204
    secrets: dict = field(default_factory=dict)  # path -> [whsec_…]
    scripts: dict = field(default_factory=dict)  # path -> [answer, …]
    arrivals: list = field(default_factory=list)

    def __post_init__(self):
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                receiver._handle(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_port
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self):
        self._server.shutdown()
        self._server.server_close()

    def at(self, path: str) -> list[Arrival]:
        with self._lock:
            return [a for a in self.arrivals if a.path == path]

    def _answer(self, path: str):
        with self._lock:
            script = self.scripts.get(path)
            return script.pop(0) if script else self.default

    def _handle(self, request: BaseHTTPRequestHandler):
        raw = request.rfile.read(int(request.headers.get("Content-Length") or 0))
        headers = {k.lower(): v for k, v in request.headers.items()}
        verified = []
        for secret in self.secrets.get(request.path, []):
            try:
                Webhook(secret).verify(raw, headers)
                verified.append(secret)
            except WebhookVerificationError:
                pass
        answer = self._answer(request.path)
        extra = {}
        if isinstance(answer, tuple) and answer[0] == "sleep":
            time.sleep(answer[1])
            answer = 200
        elif isinstance(answer, tuple):
            answer, extra = answer
        if not verified:
            answer = 401
        try:
            body = json.loads(raw)
        except ValueError:
            body = {"unparsed": raw.decode(errors="replace")}
        with self._lock:
            self.arrivals.append(Arrival(request.path, headers.get("webhook-id", ""), body, headers, verified,
                                         answer, time.monotonic()))
        reply = json.dumps({"ok": answer < 300}).encode()
        request.send_response(answer)
        for name, value in extra.items():
            request.send_header(name, value)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(reply)))
        request.end_headers()
        request.wfile.write(reply)
