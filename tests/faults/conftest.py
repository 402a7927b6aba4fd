"""Fault tests: each starts what it breaks (its own Redis, its own worker) so the rest of the suite is untouched,
and waits on outcomes with a bound, never on a wall-clock date."""
import dataclasses
import time
import types

import pytest

from core import bootstrap
from core.workflows.registry import WORKFLOWS
from devstack import redis_server


def wait_until(check, timeout=60.0, every=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(every)
    return False


@pytest.fixture()
def local_settings(settings, tmp_path):
    """Settings for one test with their own Redis (data not kept: a restart loses it): `local(**changes)` boots
    the process with them; the suite's settings are restored afterwards."""
    server = redis_server(tmp_path / "redis", persistent=False).start()
    current = {}

    def local(**changes):
        current["settings"] = dataclasses.replace(settings, redis_url=f"redis://127.0.0.1:{server.port}/0",
                                                  **changes)
        bootstrap.init(current["settings"])
        return current["settings"]

    local.server = server
    yield local
    server.stop()
    bootstrap.init(settings)


@pytest.fixture()
def probe_workflow(monkeypatch):
    """Register a workflow whose `run(ctx, data)` the test supplies, under the name `fault-probe`."""

    def register(run):
        monkeypatch.setitem(WORKFLOWS, "fault-probe", types.SimpleNamespace(NAME="fault-probe", run=run))
        return "fault-probe"

    return register
