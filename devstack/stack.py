"""DevStack: the PostgreSQL, Redis and moto servers for `zixly dev` and the test suite.

Each server is started only when its env var (DATABASE_URL, REDIS_URL, AWS_ENDPOINT_URL) is unset.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from devstack.postgres import EmbeddedPostgres
from devstack.servers import moto_server, redis_server


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
