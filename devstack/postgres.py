"""An embedded PostgreSQL server from the `pgserver` wheel, on 127.0.0.1, its data in a folder of ours."""
from __future__ import annotations

import os
from pathlib import Path

from devstack.ports import free_port


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
        # pgserver is imported only when a server is embedded: importing it reads XDG_RUNTIME_DIR (warning when
        # unset), which DevStack.start sets first, and it would slow every `zixly` command (not a cycle)
        from pgserver._commands import pg_ctl

        pg_ctl(args, pgdata=self.datadir, user=self.system_user, timeout=timeout)

    def start(self) -> EmbeddedPostgres:
        from pgserver._commands import initdb  # see _pg_ctl

        self.datadir.mkdir(parents=True, exist_ok=True)
        if self.system_user:
            import pwd  # POSIX only, and only needed when running as root

            from pgserver.utils import ensure_prefix_permissions, ensure_user_exists  # see _pg_ctl

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
