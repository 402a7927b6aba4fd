"""External tools the deployment tests run, installed on first use when missing (no test fakes them):

- promtool: from Debian's `prometheus` package, unpacked with `apt-get download` + `dpkg-deb -x` into a cache
  folder (nothing installed system-wide, no Prometheus server started); a promtool already on PATH is used.
- checkov: into its own virtualenv in the cache folder, because its pins (boto3, networkx, packaging …) would
  downgrade the project's own dependencies if it shared .venv.

The cache folder is $XDG_CACHE_HOME/zixly-tools (~/.cache/zixly-tools), kept across runs and work trees.
"""
from __future__ import annotations

import contextlib
import fcntl
import glob
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CHECKOV_VERSION = "3.3.30"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "zixly-tools"


class ToolUnavailable(RuntimeError):
    pass


@contextlib.contextmanager
def _installing(name: str):
    """One installer at a time per tool (pytest-xdist workers, or two work trees on one machine)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _run(argv, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, **kwargs)


def promtool() -> str:
    found = shutil.which("promtool")
    if found:
        return found
    target = CACHE / "prometheus-deb"
    binary = target / "usr" / "bin" / "promtool"
    with _installing("promtool"):
        if not binary.exists():
            _unpack_prometheus_deb(target)
    return str(binary)


def _unpack_prometheus_deb(target: Path) -> None:
    if not shutil.which("apt-get") or not shutil.which("dpkg-deb"):
        raise ToolUnavailable("promtool is not installed and this machine has no apt-get/dpkg-deb to fetch it")
    with tempfile.TemporaryDirectory() as tmp:
        download = _run(["apt-get", "download", "prometheus"], cwd=tmp)
        if download.returncode != 0 and os.geteuid() == 0:  # a fresh machine has no package lists yet
            _run(["apt-get", "update"])
            download = _run(["apt-get", "download", "prometheus"], cwd=tmp)
        debs = glob.glob(os.path.join(tmp, "prometheus_*.deb"))
        if download.returncode != 0 or not debs:
            raise ToolUnavailable(f"could not download Debian's prometheus package: {download.stderr.strip()}")
        shutil.rmtree(target, ignore_errors=True)
        unpack = _run(["dpkg-deb", "-x", debs[0], str(target)])
        if unpack.returncode != 0:
            shutil.rmtree(target, ignore_errors=True)
            raise ToolUnavailable(f"could not unpack {debs[0]}: {unpack.stderr.strip()}")


def checkov() -> list[str]:
    """The argv prefix that runs checkov (its own virtualenv, created on first use)."""
    venv = CACHE / f"checkov-{CHECKOV_VERSION}"
    python = venv / "bin" / "python"
    done = venv / ".installed"
    with _installing("checkov"):
        if not done.exists():
            _install_checkov(venv, python)
            done.touch()
    return [str(python), "-m", "checkov.main"]


def _install_checkov(venv: Path, python: Path) -> None:
    shutil.rmtree(venv, ignore_errors=True)
    made = _run([sys.executable, "-m", "venv", str(venv)])
    if made.returncode != 0:
        raise ToolUnavailable(f"could not create a virtualenv for checkov: {made.stderr.strip()}")
    pip = _run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                f"checkov=={CHECKOV_VERSION}"], timeout=900)
    if pip.returncode != 0:
        raise ToolUnavailable(f"could not install checkov {CHECKOV_VERSION}: {pip.stderr.strip()[-2000:]}")
