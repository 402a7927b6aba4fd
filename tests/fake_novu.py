"""A local stand-in for Novu's `POST /v1/events/trigger`: records every request and answers from a script.

Scripts are per tenant (the trigger's context.tenant), so requests of other tests' tenants never use them up.
Entries, used in order (then the default): "ok" → 201 like Novu; an int → that status with a Novu-shaped error
body; "hang" → read the request and answer nothing for `hang_seconds`. A transactionId that was already
answered 201 gets Novu's 400 "transactionId property is not unique", so a duplicate send is visible.
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Seen:
    method: str
    path: str
    headers: dict
    body: dict
    at: float
    answer: int | str = 0


@dataclass
class FakeNovu:
    hang_seconds: float = 3.0
    scripts: dict = field(default_factory=dict)  # tenant slug -> list of answers
    default: int | str = "ok"
    requests: list[Seen] = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)

    def __post_init__(self):
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                fake._handle(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self):
        self._server.shutdown()
        self._server.server_close()

    def for_tenant(self, slug: str) -> list[Seen]:
        return [r for r in self.requests if (r.body.get("context") or {}).get("tenant") == slug]

    def _next_answer(self, body: dict):
        with self._lock:
            script = self.scripts.get((body.get("context") or {}).get("tenant"))
            answer = script.pop(0) if script else self.default
            txn = body.get("transactionId")
            if answer == "ok" and txn in self.accepted:
                return 400, {"statusCode": 400, "timestamp": "2026-01-01T00:00:00Z", "path": "/v1/events/trigger",
                             "message": "transactionId property is not unique, please make sure all triggers "
                                        "have a unique transactionId"}
            if answer == "ok":
                self.accepted.append(txn)
                return 201, {"data": {"acknowledged": True, "status": "processed", "transactionId": txn}}
            if answer == "hang":
                return "hang", None
            return answer, {"statusCode": answer, "timestamp": "2026-01-01T00:00:00Z",
                            "path": "/v1/events/trigger", "message": "fake Novu error"}

    def _handle(self, handler: BaseHTTPRequestHandler):
        raw = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {"_raw": raw.decode(errors="replace")}
        seen = Seen(handler.command, handler.path, {k.lower(): v for k, v in handler.headers.items()}, body,
                    time.monotonic())
        status, answer = self._next_answer(body)
        seen.answer = status
        self.requests.append(seen)
        if status == "hang":
            time.sleep(self.hang_seconds)
            return
        data = json.dumps(answer).encode()
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
        except OSError:
            pass
