"""The API as production runs it, for tests: gunicorn with api/gunicorn_conf.py (its worker class, limits and
hooks) serving api.wsgi:app in a subprocess, on a loopback socket the test binds itself (so no other process can
take the port between choosing and listening), with the suite's own settings passed as the environment
(tests/deploy/settings_env.py: `Settings.from_env()` in each worker equals the tests' Settings).

Invariant: `start()` returns only once /health answers 200 through gunicorn; `stop()` ends the server with
SIGTERM (gunicorn's graceful shutdown) and waits for it, killing it only if it outlives the graceful timeout.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.deploy.settings_env import environment_for, settings_env_vars

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 90  # seconds: two workers importing the app on a loaded 2-core machine
STOP_TIMEOUT = 40  # gunicorn_conf's graceful_timeout (30 s), and some


class GunicornServer:
    def __init__(self, settings, home: Path, *, workers: int = 2, threads: int = 4):
        self.settings, self.home, self.workers, self.threads = settings, Path(home), workers, threads
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self.log_file = self.home / "gunicorn.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def environment(self) -> dict[str, str]:
        ours = {v.name for v in settings_env_vars()}  # a developer's exported ZIXLY_* must not leak in
        env = {k: v for k, v in os.environ.items() if k not in ours}
        env.update(environment_for(self.settings))
        env.update(ZIXLY_HOME=str(self.home), PROMETHEUS_MULTIPROC_DIR=str(self.home / "metrics"),
                   WEB_CONCURRENCY=str(self.workers), ZIXLY_THREADS=str(self.threads))
        return env

    def start(self) -> GunicornServer:
        listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.port = listener.getsockname()[1]
        env = self.environment()
        env["ZIXLY_BIND"] = f"fd://{listener.fileno()}"  # gunicorn_conf's `bind`, on the socket bound here
        with open(self.log_file, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "-c", "python:api.gunicorn_conf", "api.wsgi:app"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, pass_fds=(listener.fileno(),),
                start_new_session=True)
        listener.close()  # gunicorn holds its own copy
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_healthy(self):
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=5) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.proc.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not answer /health in {START_TIMEOUT} s:\n{self.log_tail()}")
            time.sleep(0.2)

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.wait(timeout=10)

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_file.read_text(errors="replace")[-chars:] if self.log_file.exists() else ""
