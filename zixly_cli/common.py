"""What the command groups share: the local state folder, booting the runtime from env, the option check for
PostgreSQL durations, and the Prometheus multiprocess folder of the processes the CLI becomes."""
from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

import click

from core import bootstrap
from core.platform.config import Settings
from tenancy.db import Router, get_router

LOCK_TIMEOUT = re.compile(r"^\d+(ms|s|min)?$")


def home() -> Path:
    """ZIXLY_HOME: local state such as beat's schedule and the development keys (default .zixly)."""
    return Path(os.environ.get("ZIXLY_HOME", ".zixly"))


def boot() -> Settings:
    """Wire this process (core.bootstrap.init) with settings read from the environment."""
    return bootstrap.init(Settings.from_env())


def jwt_audience(staff: bool) -> str:
    """The `aud` the service expects of a staff or a tenant token, from the same settings it reads."""
    audience = os.environ.get("ZIXLY_JWT_AUDIENCE", "zixly-api")
    if not staff:
        return audience
    return Settings(database_url="", redis_url="", jwt_audience=audience,
                    jwt_staff_audience=os.environ.get("ZIXLY_JWT_STAFF_AUDIENCE") or None).jwt_staff_audience


def router() -> Router:
    """The shard router of a runtime booted from env."""
    boot()
    return get_router()


def lock_timeout(ctx, param, value):
    """click callback: a PostgreSQL duration."""
    if not LOCK_TIMEOUT.match(value):
        raise click.BadParameter("use a PostgreSQL duration such as 500ms, 5s or 1min")
    return value


def multiprocess_metrics_dir(name: str) -> None:
    """Prefork children write their samples to files the metrics endpoint aggregates; start from empty."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.path.join(tempfile.gettempdir(),
                                                                      f"zixly-metrics-{name}-{os.getpid()}")
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
