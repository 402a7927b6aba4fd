"""A real PgBouncer (Debian's `pgbouncer` binary) in transaction-pooling mode in front of a PostgreSQL server, for
the tests that prove Zixly is pooler-safe: a server connection serves whichever client transaction comes next,
so any tenant state left on a connection (a session SET, a session advisory lock, a prepared statement) would
leak to another tenant or fail.

PgBouncer refuses to run as root; as root it is started as an unprivileged system user (`postgres`, which Debian's
package creates, else pgserver's), which then must be able to read its config and write its folder.
"""
from __future__ import annotations

import os
import pwd
import shutil
from pathlib import Path

from sqlalchemy.engine import make_url

from devstack.ports import free_port
from devstack.servers import ChildServer

BINARY_PATHS = ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer")


def binary() -> str:
    found = shutil.which("pgbouncer") or next((p for p in BINARY_PATHS if os.path.exists(p)), None)
    if found is None:
        raise RuntimeError("pgbouncer is not installed (Debian: apt-get install pgbouncer; `make test` does it)")
    return found


def _unprivileged_account() -> pwd.struct_passwd:
    for name in ("postgres", "pgserver", "nobody"):  # Debian's package user, pgserver's, the last resort
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("no unprivileged account to run pgbouncer as")


class PgBouncer:
    """`PgBouncer(folder, server_url, pool_size=2).start()`; `.url(database)` is the URL clients use."""

    def __init__(self, folder: Path, server_url: str, *, pool_size: int = 2):
        self.folder, self.server, self.pool_size = Path(folder).absolute(), make_url(server_url), pool_size
        self.port = free_port()
        self._child: ChildServer | None = None

    def url(self, database: str | None = None) -> str:
        """The server URL with PgBouncer's address (and `database`, when given)."""
        url = self.server.set(host="127.0.0.1", port=self.port)
        return (url.set(database=database) if database else url).render_as_string(hide_password=False)

    def _config(self) -> str:
        user = self.server.username or "postgres"
        return "\n".join([
            "[databases]",
            f"* = host={self.server.host or '127.0.0.1'} port={self.server.port or 5432} user={user}",
            "[pgbouncer]",
            "listen_addr = 127.0.0.1",
            f"listen_port = {self.port}",
            "unix_socket_dir =",
            "auth_type = any",
            "pool_mode = transaction",
            f"default_pool_size = {self.pool_size}",
            "min_pool_size = 0",
            "reserve_pool_size = 0",
            "max_client_conn = 500",
            f"max_db_connections = {self.pool_size}",
            "server_reset_query =",  # transaction mode: nothing is reset between clients, as in production
            "ignore_startup_parameters = extra_float_digits,options",
            f"admin_users = {user}",
            f"logfile = {self.folder / 'pgbouncer.log'}",
            f"pidfile = {self.folder / 'pgbouncer.pid'}",
            "",
        ])

    def start(self) -> PgBouncer:
        self.folder.mkdir(parents=True, exist_ok=True)
        ini = self.folder / "pgbouncer.ini"
        ini.write_text(self._config())
        argv = [binary()]
        if os.geteuid() == 0:  # PgBouncer will not run as root
            account = _unprivileged_account()
            os.chown(self.folder, account.pw_uid, account.pw_gid)
            os.chown(ini, account.pw_uid, account.pw_gid)
            for parent in self.folder.parents:  # the postgres user must be able to reach its folder
                if parent == Path("/"):
                    break
                os.chmod(parent, os.stat(parent).st_mode | 0o011)
            argv += ["-u", account.pw_name]
        self._child = ChildServer([*argv, str(ini)], self.port, self.folder / "stdout.log").start()
        return self

    def stop(self) -> None:
        if self._child is not None:
            self._child.stop()
