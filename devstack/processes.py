"""The processes `zixly dev` serves with: the API under gunicorn, a Celery worker running beat, the outbound
delivery consumer and the inbox processor, each in its own process group so one signal stops it with its children."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


class StartupError(RuntimeError):
    """A process of the development stack did not come up."""


def spawn(argv: list[str]) -> subprocess.Popen:
    return subprocess.Popen(argv, start_new_session=True, env=os.environ.copy())


def terminate(proc: subprocess.Popen) -> None:
    """SIGTERM the process group (a warm shutdown), SIGKILL it after 15 s."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


def wait_http(port: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    """Until the API answers /health on the port; StartupError when it exits or stays silent."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise StartupError("the API server exited during start-up")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise StartupError(f"the API did not answer on port {port} within {timeout}s")


class DevServices:
    """Worker (with beat, its schedule in `home`), consumer, inbox processor and API on 127.0.0.1:`port`, with the
    current environment. `procs` holds what was started, so `stop` works after a failed `start` too."""

    def __init__(self, home: Path, port: int):
        self.home, self.port = home, port
        self.procs: list[subprocess.Popen] = []

    def start(self, timeout: float = 60) -> None:
        py = sys.executable
        # --quiet: no text banner; what the worker logs is JSON lines like every other process's
        self.procs.append(spawn([py, "-m", "celery", "-A", "workers.app", "--quiet", "worker", "-B",
                                 "--loglevel", "INFO", "--concurrency", "2",
                                 "--schedule", str(self.home / "celerybeat-schedule")]))
        self.procs.append(spawn([py, "-m", "workers.consumer", "--threads", "2"]))
        self.procs.append(spawn([py, "-m", "workers.inbox"]))  # fans kept webhooks out into events and jobs
        self.procs.append(spawn([py, "-m", "gunicorn", "-c", "python:api.gunicorn_conf",
                                 "--bind", f"127.0.0.1:{self.port}", "--workers", "2", "--threads", "4",
                                 "console.wsgi:app"]))
        wait_http(self.port, self.procs[-1], timeout)

    def running(self) -> bool:
        """Every process still runs."""
        return all(p.poll() is None for p in self.procs)

    def stop(self) -> None:
        for proc in reversed(self.procs):
            terminate(proc)
