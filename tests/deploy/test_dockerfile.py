"""The Dockerfile, checked statically (no Docker engine here; checkov's Dockerfile checks run in
test_terraform.py): it copies every package pyproject installs, .dockerignore keeps none of them out, the
runtime stage runs as a non-root user, and its default command is the real API server."""
from __future__ import annotations

import fnmatch
import json
import subprocess
import sys
import tomllib
import zipfile

import pytest

from tests.deploy import compose_checks
from tests.deploy.conftest import ROOT
from zixly_cli.main import main as zixly_cli


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    out, buffer = [], ""
    for line in text.splitlines():
        if not buffer and (not line.strip() or line.lstrip().startswith("#")):
            continue
        buffer += line.rstrip()
        if buffer.endswith("\\"):
            buffer = buffer[:-1] + " "
            continue
        keyword, _, args = buffer.strip().partition(" ")
        out.append((keyword.upper(), args.strip()))
        buffer = ""
    return out


def stages(text: str) -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for keyword, args in instructions(text):
        if keyword == "FROM":
            result.append([])
        if result:
            result[-1].append((keyword, args))
    return result


def installed_packages() -> set[str]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return {p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}


def dockerfile_problems(text: str, packages: set[str], dockerignore: str) -> list[str]:
    problems = []
    all_stages = stages(text)
    copied = {args.split()[0].rstrip("/") for stage in all_stages for kw, args in stage
              if kw == "COPY" and not args.startswith("--from")}
    problems += [f"package {p} is installed by pyproject but never copied into the image"
                 for p in sorted(packages - copied)]
    ignore = [line.strip() for line in dockerignore.splitlines() if line.strip() and not line.startswith("#")]
    problems += [f".dockerignore excludes {src}, which the Dockerfile copies" for src in sorted(copied)
                 if any(fnmatch.fnmatch(src, pattern.rstrip("/")) for pattern in ignore if not pattern.startswith("!"))]
    for stage in all_stages:
        image = stage[0][1].split()[0]
        if ":" not in image or image.endswith(":latest"):
            problems.append(f"base image {image} is not pinned to a version")
    runtime = all_stages[-1] if all_stages else []
    users = [args for kw, args in runtime if kw == "USER"]
    if not users or users[-1].split(":")[0] in {"root", "0"}:
        problems.append("the runtime stage runs as root")
    cmd = [args for kw, args in runtime if kw == "CMD"]
    if not cmd:
        problems.append("the runtime stage has no default command")
    else:
        problems += [f"CMD: {p}" for p in compose_checks.command_problems(json.loads(cmd[-1]), zixly_cli, ROOT)]
    return problems


def _files():
    return (ROOT / "Dockerfile").read_text(), (ROOT / ".dockerignore").read_text()


def test_the_dockerfile_builds_a_complete_non_root_image():
    text, ignore = _files()
    assert dockerfile_problems(text, installed_packages(), ignore) == []
    assert len(stages(text)) == 2  # build (compiler) and runtime (no compiler)
    assert installed_packages() >= {"api", "core", "tenancy", "workers", "migrations"}


@pytest.mark.parametrize("mutate, expected", [
    (lambda t, i: (t.replace("COPY workers ./workers\n", ""), i),
     "package workers is installed by pyproject but never copied into the image"),
    (lambda t, i: (t, i + "core\n"), ".dockerignore excludes core, which the Dockerfile copies"),
    (lambda t, i: (t.replace("USER zixly", "USER root"), i), "the runtime stage runs as root"),
    (lambda t, i: (t.replace("FROM python:3.11-slim-bookworm AS runtime", "FROM python AS runtime"), i),
     "base image python is not pinned to a version"),
    (lambda t, i: (t.replace('"console.wsgi:app"]', '"console.wsgi:application"]'), i),
     "CMD: console.wsgi defines no `application` for gunicorn"),
], ids=["package-not-copied", "source-ignored", "runs-as-root", "unpinned-base", "cmd-not-the-app"])
def test_the_dockerfile_check_catches(mutate, expected):
    text, ignore = mutate(*_files())
    assert expected in dockerfile_problems(text, installed_packages(), ignore)


def test_the_image_install_carries_every_source_and_migration_file(tmp_path):
    """The image runs `pip install .` (not an editable install): the wheel must hold every module, migration
    script and template of the packages it copies, or `zixly db upgrade` in the container finds no revisions."""
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "--disable-pip-version-check", "-w", str(tmp_path), str(ROOT)],
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = tmp_path.glob("zixly-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    wanted = {p.relative_to(ROOT).as_posix() for package in installed_packages()
              for p in (ROOT / package).rglob("*") if p.suffix in {".py", ".mako", ".ini"}
              and "__pycache__" not in p.parts}
    assert {"migrations/tenant/script.py.mako", "api/wsgi.py"} <= wanted
    assert sorted(wanted - names) == []
