"""The environment a running `zixly dev` gave its services, kept in ZIXLY_HOME while it runs, so a second
command (`zixly dev send-webhook`) reaches the same database, broker and simulators without being told.

Invariant: the file exists only while `zixly dev` serves (written once its services are up, removed when it
stops), is readable by its owner only, and never overrides what the caller's environment names.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

FILE = "dev-env.json"
KEPT = ("DATABASE_URL", "REDIS_URL", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


def _kept(name: str) -> bool:
    return name in KEPT or name.startswith("ZIXLY_")


def write(home: Path) -> Path:
    path = home / FILE
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(json.dumps({k: v for k, v in os.environ.items() if _kept(k)}, indent=1, sort_keys=True))
    return path


def load(home: Path) -> bool:
    """Add the running stack's settings to this process's environment (the environment wins); False if none."""
    path = home / FILE
    try:
        values = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    for name, value in values.items():
        if _kept(name) and isinstance(value, str):
            os.environ.setdefault(name, value)
    return True


def remove(home: Path) -> None:
    (home / FILE).unlink(missing_ok=True)
